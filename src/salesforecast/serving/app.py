"""The forecasting API: thin routes over one prediction path, errors as JSON, Prometheus metrics."""

from __future__ import annotations

import time
from typing import Protocol

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client import values as prometheus_values
from starlette.exceptions import HTTPException as StarletteHTTPException

from salesforecast import __version__
from salesforecast.errors import OnlineStoreUnavailable, UnknownSeriesError
from salesforecast.serving.schemas import (
    ErrorResponse,
    ForecastRequest,
    ForecastResponse,
    SeriesForecast,
    SeriesKey,
)

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)


class Predictor(Protocol):
    """What the API needs from the prediction path (`salesforecast.serving.predict.Forecaster`)."""

    max_horizon: int
    model_version: str

    def forecast(self, keys: list[SeriesKey], horizon: int) -> list[SeriesForecast]: ...

    def check_store(self) -> None: ...


def _error(status: int, error: str, detail: object = None) -> JSONResponse:
    return JSONResponse(status_code=status, content=ErrorResponse(error=error, detail=detail).model_dump())


def _route(request: Request) -> str:
    route = request.scope.get("route")
    return getattr(route, "path", None) or "unmatched"


def create_app(predictor: Predictor) -> FastAPI:
    app = FastAPI(
        title="salesforecast",
        version=__version__,
        description="Weekly sales forecasts (P10/P50/P90) for any store and department.",
    )
    # Importing Feast sets PROMETHEUS_MULTIPROC_DIR for its Gunicorn workers, which makes
    # prometheus_client (imported after it) keep values in files shared by every metric of the same
    # name in the process. The API is one process: its counters stay in memory, one set per app.
    prometheus_values.ValueClass = prometheus_values.MutexValue
    registry = CollectorRegistry()
    requests = Counter("salesforecast_requests", "HTTP requests", ["route", "status"], registry=registry)
    errors = Counter("salesforecast_errors", "Failed requests by kind", ["route", "kind"], registry=registry)
    latency = Histogram(
        "salesforecast_request_latency_seconds",
        "End-to-end request latency",
        ["route"],
        buckets=LATENCY_BUCKETS,
        registry=registry,
    )
    series_served = Counter("salesforecast_series_forecast", "Series forecast", registry=registry)

    @app.middleware("http")
    async def measure(request: Request, call_next):  # type: ignore[no-untyped-def]
        started = time.perf_counter()
        try:
            response = await call_next(request)
        except Exception:
            route = _route(request)
            errors.labels(route, "internal").inc()
            requests.labels(route, "500").inc()
            return _error(500, "internal error", "the server failed to answer; see its log")
        route = _route(request)  # the matched template, so that scanned URLs add no label values
        latency.labels(route).observe(time.perf_counter() - started)
        requests.labels(route, str(response.status_code)).inc()
        if response.status_code >= 400:
            errors.labels(route, str(response.status_code)).inc()
        return response

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        detail = [
            {
                "field": "body"
                if e["type"] == "json_invalid"
                else ".".join(str(p) for p in e["loc"][1:]) or "body",
                "message": e["msg"],
            }
            for e in exc.errors()
        ]
        return _error(422, "invalid request", detail)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        return _error(exc.status_code, str(exc.detail).lower(), f"{request.method} {request.url.path}")

    @app.exception_handler(UnknownSeriesError)
    async def unknown(request: Request, exc: UnknownSeriesError) -> JSONResponse:
        return _error(404, str(exc), [{"store": s, "dept": d} for s, d in exc.keys])

    @app.exception_handler(OnlineStoreUnavailable)
    async def unavailable(request: Request, exc: OnlineStoreUnavailable) -> JSONResponse:
        return _error(503, "online store unavailable", str(exc))

    @app.get("/healthz")
    def healthz() -> dict[str, str]:
        """The process is up."""
        return {"status": "ok"}

    @app.get("/readyz", responses={503: {"model": ErrorResponse}})
    def readyz() -> dict[str, str]:
        """The model is loaded and the online store answers."""
        predictor.check_store()
        return {"status": "ready", "model_version": predictor.model_version}

    @app.get("/metrics", response_class=PlainTextResponse)
    def metrics() -> PlainTextResponse:
        return PlainTextResponse(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)

    @app.post(
        "/v1/forecast",
        response_model=ForecastResponse,
        responses={
            404: {"model": ErrorResponse},
            422: {"model": ErrorResponse},
            503: {"model": ErrorResponse},
        },
    )
    def forecast(body: ForecastRequest) -> Response:
        """P10/P50/P90 forecasts for the next `horizon` weeks of each series."""
        if body.horizon > predictor.max_horizon:
            return _error(
                422,
                "invalid request",
                [{"field": "horizon", "message": f"at most {predictor.max_horizon}, the model's horizon"}],
            )
        results = predictor.forecast(body.series, body.horizon)
        series_served.inc(len(results))
        # Serialized by pydantic-core directly: FastAPI would validate the built models again and
        # encode them in Python (most of the response time of a 100-series request).
        body_json = ForecastResponse(results=results).model_dump_json()
        return Response(content=body_json, media_type="application/json")

    return app
