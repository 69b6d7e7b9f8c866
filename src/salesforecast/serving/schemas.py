"""Request and response models of the forecasting API (and of the Python prediction path)."""

from __future__ import annotations

import datetime as dt

from pydantic import BaseModel, ConfigDict, Field

from salesforecast.data.schema import ID_RANGES

MAX_SERIES = 500


class SeriesKey(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    # Strict: true or "3" is no store number. Bounded: the online key is store * 1000 + dept.
    store: int = Field(
        ge=ID_RANGES["store"][0],
        le=ID_RANGES["store"][1],
        strict=True,
        description="Store number, as in the Kaggle files.",
    )
    dept: int = Field(
        ge=ID_RANGES["dept"][0], le=ID_RANGES["dept"][1], strict=True, description="Department number."
    )


class ForecastRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    series: list[SeriesKey] = Field(min_length=1, max_length=MAX_SERIES)
    horizon: int = Field(8, ge=1, le=39, strict=True, description="Weeks ahead; at most the model's horizon.")


class ForecastPoint(BaseModel):
    date: dt.date
    h: int
    p10: float
    p50: float
    p90: float


class SeriesForecast(BaseModel):
    store: int
    dept: int
    forecasts: list[ForecastPoint]
    model_version: str
    feature_timestamp: dt.datetime = Field(description="Date of the latest week the features describe.")


class ForecastResponse(BaseModel):
    results: list[SeriesForecast]


class ErrorResponse(BaseModel):
    error: str
    detail: str | list[dict] | None = None
