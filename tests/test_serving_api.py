"""The forecasting API and the one prediction path, against real online stores and a tiny trained model.

One small model is trained per module on the synthetic data's Feast training set (a few seconds);
SQLite, PostgreSQL and a private Redis (started here on a free port) serve its features.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from pathlib import Path

import numpy as np
import pandas as pd
import psycopg
import pytest
import torch
from conftest import train_tiny_model
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from salesforecast.cli import app as cli_app
from salesforecast.config import Settings
from salesforecast.data.ingest import load
from salesforecast.errors import ModelNotFoundError
from salesforecast.features.build import build
from salesforecast.featurestore.config import StoreOptions
from salesforecast.featurestore.materialize import materialize
from salesforecast.featurestore.training_set import build_training_set
from salesforecast.model import windows as W
from salesforecast.model.predict import forecast_origin

# Forecasts of one series may differ in float32 rounding with the batch it was computed in.
from salesforecast.offline.store import read_feature_table, write_feature_tables
from salesforecast.serving.app import create_app
from salesforecast.serving.batch import score_all, series_keys, write_forecasts
from salesforecast.serving.predict import Forecaster

HORIZON = 4


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory, synth_dir: Path) -> Path:
    """Offline tables (local), the SQLite online store materialized, a tiny model trained."""
    wd = tmp_path_factory.mktemp("serving")
    settings = Settings(workdir=wd)
    raw = load(synth_dir)
    write_feature_tables(settings, build(raw), raw.sources)
    materialize(settings)
    frame_path = wd / "frame.parquet"
    build_training_set(settings).to_parquet(frame_path)
    train_tiny_model(wd, frame_path, horizon=HORIZON)
    return wd


@pytest.fixture(scope="module")
def forecaster(workdir: Path) -> Forecaster:
    return Forecaster(Settings(workdir=workdir))


@pytest.fixture(scope="module")
def client(forecaster: Forecaster) -> TestClient:
    return TestClient(create_app(forecaster))


@pytest.fixture(scope="module")
def keys(workdir: Path) -> list[tuple[int, int]]:
    return series_keys(Settings(workdir=workdir))


def _body(keys: list[tuple[int, int]], horizon: int = HORIZON) -> dict:
    return {"series": [{"store": s, "dept": d} for s, d in keys], "horizon": horizon}


def test_a_valid_request_returns_quantiles_dates_version_and_feature_timestamp(client, forecaster, keys):
    store, dept = keys[0]
    response = client.post("/v1/forecast", json=_body([(store, dept)], 3))
    assert response.status_code == 200, response.text
    (result,) = response.json()["results"]
    assert (result["store"], result["dept"]) == (store, dept)
    assert result["model_version"] == forecaster.model_version
    assert result["feature_timestamp"].startswith("2012-10-26")  # the last week with sales
    points = result["forecasts"]
    assert [p["h"] for p in points] == [1, 2, 3]
    assert [p["date"] for p in points] == ["2012-11-02", "2012-11-09", "2012-11-16"]
    for p in points:
        assert p["p10"] <= p["p50"] <= p["p90"] and np.isfinite(p["p50"])


def test_api_cli_and_batch_scorer_give_the_same_forecasts(client, forecaster, workdir, keys, tmp_path):
    response = client.post("/v1/forecast", json=_body(keys))  # the whole batch in one request
    assert response.status_code == 200
    api = pd.DataFrame(
        [
            {"store": r["store"], "dept": r["dept"], **p}
            for r in response.json()["results"]
            for p in r["forecasts"]
        ]
    )
    assert len(api) == len(keys) * HORIZON
    batch = score_all(forecaster, keys, batch_size=7)  # several batches
    out = write_forecasts(batch, tmp_path / "all.csv")
    assert pd.read_csv(out).shape[0] == len(batch)
    merged = api.merge(batch, on=["store", "dept", "h"], suffixes=("_api", "_batch"))
    assert len(merged) == len(api)
    for q in ("p10", "p50", "p90"):
        np.testing.assert_allclose(
            merged[f"{q}_api"], merged[f"{q}_batch"], rtol=1e-5, atol=0.01
        )  # float32: batch composition

    store, dept = keys[-1]
    result = CliRunner().invoke(
        cli_app, ["predict", "--store", str(store), "--dept", str(dept), "--workdir", str(workdir)]
    )
    assert result.exit_code == 0, result.output
    printed = [line.split("│") for line in result.output.splitlines() if "2012-" in line and "│" in line]
    cli_p50 = [float(cells[4].strip().replace(",", "")) for cells in printed]
    expected = api[(api["store"] == store) & (api["dept"] == dept)].sort_values("h")["p50"]
    np.testing.assert_allclose(cli_p50, expected.round(2), atol=0.011)

    unknown = CliRunner().invoke(
        cli_app, ["predict", "--store", str(store), "--dept", "999", "--workdir", str(workdir)]
    )
    assert unknown.exit_code == 2 and "unknown series" in unknown.output
    assert "series that exist:" in unknown.output and f"--store {store} --dept" in unknown.output


def test_online_inputs_and_forecast_equal_the_offline_ones(forecaster, workdir, keys):
    """The consistency that matters: the model's inputs built from one online read equal those
    that training/evaluation build from the offline frame for the same origin."""
    settings = Settings(workdir=workdir)
    frame = build_training_set(settings)
    # The online store holds the latest row of each series: the offline training set's last row.
    online = forecaster.reader.store.get_online_features(
        features=["sales_history:sales_lag_1", "sales_history:sales_rolling_mean_12", "store_external:cpi"],
        entity_rows=[{"store_dept": s * 1000 + d, "store": s} for s, d in keys],
    ).to_df()
    latest = frame.sort_values("date").groupby(["store", "dept"]).tail(1).sort_values(["store", "dept"])
    for col in ("sales_lag_1", "sales_rolling_mean_12", "cpi"):
        np.testing.assert_array_equal(online[col].to_numpy(float), latest[col].to_numpy(float))

    offline_panel = W.build_panel(
        frame, forecaster.prep, store_features=read_feature_table(settings, "store_features")
    )
    L, H = forecaster.encoder_length, forecaster.max_horizon
    origin = pd.Timestamp("2012-11-02")
    index = pd.MultiIndex.from_frame(offline_panel.keys).get_indexer(pd.MultiIndex.from_tuples(keys))
    series = torch.as_tensor(index)
    offline = W.gather(offline_panel, series, torch.full_like(series, offline_panel.week(origin)), L, H)
    online_batch, origins = forecaster.inputs(forecaster.reader.read(keys))
    assert (origins == np.datetime64("2012-11-02")).all()
    for name in ("static_cat", "static_real", "known_cat", "known_real", "observed_real", "scale"):
        torch.testing.assert_close(online_batch[name], offline[name], rtol=0, atol=0, msg=name)

    reference = forecast_origin(forecaster.model, offline_panel, origin, series=series)
    served = forecaster.forecast_frame(keys)
    merged = reference.merge(served, on=["store", "dept", "h"])
    assert len(merged) == len(keys) * H
    for q in ("p10", "p50", "p90"):
        np.testing.assert_allclose(
            merged[f"{q}_x"], merged[f"{q}_y"], rtol=1e-5, atol=0.01
        )  # float32: batch composition


def test_errors_are_json_with_the_right_status(client, keys):
    unknown = client.post("/v1/forecast", json=_body([keys[0], (4, 999)]))
    assert unknown.status_code == 404
    assert "store 4 dept 999" in unknown.json()["error"]
    assert unknown.json()["detail"] == [{"store": 4, "dept": 999}]
    cases = {
        "malformed": b"{not json",
        "bad type": {"series": [{"store": "one", "dept": 1}], "horizon": 2},
        "missing series": {"horizon": 2},
        "no series": {"series": [], "horizon": 2},
        "horizon zero": _body(keys[:1], 0),
        "horizon beyond the model": _body(keys[:1], HORIZON + 1),
        "too many series": _body([keys[0]] * 501),
        "unknown field": {**_body(keys[:1]), "extra": 1},
    }
    for name, body in cases.items():
        kwargs = {"content": body} if isinstance(body, bytes) else {"json": body}
        response = client.post("/v1/forecast", headers={"content-type": "application/json"}, **kwargs)
        assert response.status_code == 422, name
        assert response.json()["error"] == "invalid request", name
        assert "Traceback" not in response.text


def test_health_readiness_metrics_and_openapi(client):
    assert client.get("/healthz").json() == {"status": "ok"}
    ready = client.get("/readyz")
    assert ready.status_code == 200 and ready.json()["status"] == "ready"
    metrics = client.get("/metrics").text
    assert "salesforecast_requests_total" in metrics
    assert "salesforecast_request_latency_seconds_bucket" in metrics
    assert 'salesforecast_errors_total{kind="404"' in metrics
    assert "/v1/forecast" in client.get("/openapi.json").json()["paths"]


def test_materialize_is_incremental(workdir):
    again = materialize(Settings(workdir=workdir))
    assert again["rows_written"] == 0 and not again["full"]
    full = materialize(Settings(workdir=workdir), full=True)
    assert full["rows_written"] == full["rows"]["sales_history"] + full["rows"]["store_external"] > 0


def test_a_lost_online_store_says_what_to_run_and_materialize_full_restores_it(workdir, keys, tmp_path):
    from salesforecast.errors import OnlineStoreUnavailable

    wd = _copy_workdir(workdir, tmp_path / "wd")
    settings = Settings(workdir=wd)
    materialize(settings)
    expected = Forecaster(settings).forecast_frame(keys[:2])
    (db,) = (wd / "feature_repo" / "local" / "data").glob("online_store*.db")
    db.unlink()
    with pytest.raises(OnlineStoreUnavailable, match=r"materialize --full"):
        Forecaster(settings).forecast_frame(keys[:2])
    assert materialize(settings, full=True)["rows_written"] > 0
    pd.testing.assert_frame_equal(Forecaster(settings).forecast_frame(keys[:2]), expected)


def test_no_trained_model_refuses_to_start_with_the_command_to_run(tmp_path):
    with pytest.raises(ModelNotFoundError, match="salesforecast train"):
        Forecaster(Settings(workdir=tmp_path))
    result = CliRunner().invoke(cli_app, ["serve", "--workdir", str(tmp_path)])
    assert result.exit_code == 2 and "salesforecast train" in result.output


def _copy_workdir(workdir: Path, dest: Path) -> Path:
    for part in ("offline", "artifacts"):
        shutil.copytree(workdir / part, dest / part)
    return dest


def test_postgres_online_store(workdir, forecaster, keys, pg_dsn, tmp_path, synth_dir):
    settings = Settings(workdir=_copy_workdir(workdir, tmp_path / "pg"), profile="postgres", pg_dsn=pg_dsn)
    raw = load(synth_dir)
    write_feature_tables(settings, build(raw), raw.sources)
    summary = materialize(settings)
    assert summary["online_store"] == "postgres" and summary["rows_written"] > 0
    pg_forecaster = Forecaster(settings)
    pg_client = TestClient(create_app(pg_forecaster))
    response = pg_client.post("/v1/forecast", json=_body(keys[:20]))
    assert response.status_code == 200
    local = forecaster.forecast_frame(keys[:20])
    served = [p["p50"] for r in response.json()["results"] for p in r["forecasts"]]
    np.testing.assert_allclose(served, local["p50"], rtol=1e-5, atol=0.01)
    assert pg_client.post("/v1/forecast", json=_body([(1, 999)])).status_code == 404
    assert pg_client.get("/readyz").status_code == 200

    # The server goes away: its connection is dropped and it no longer answers (nothing listens on
    # the port the online store now points at) -> 503; back -> the same process answers again.
    online = pg_forecaster.reader.store.config.online_store
    port = online.port
    online.port = _free_port()
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
            " WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )
    down = pg_client.post("/v1/forecast", json=_body(keys[:20]))
    assert down.status_code == 503 and down.json()["error"] == "online store unavailable"
    assert "postgres online store did not answer" in down.json()["detail"]
    assert pg_client.get("/readyz").status_code == 503
    assert pg_client.get("/healthz").status_code == 200
    online.port = port
    again = pg_client.post("/v1/forecast", json=_body(keys[:20]))
    assert again.status_code == 200 and again.json() == response.json()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _start_redis(port: int, folder: Path) -> subprocess.Popen:
    proc = subprocess.Popen(
        ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
        cwd=folder,
        stdout=subprocess.DEVNULL,
    )
    for _ in range(100):
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return proc
        time.sleep(0.05)
    proc.kill()
    raise RuntimeError("redis-server did not start")


@pytest.fixture
def private_redis(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """A Redis of our own on a free port (never the machine's shared one): it can be stopped."""
    if shutil.which("redis-server") is None:
        pytest.skip("redis-server not installed")
    port = _free_port()
    state = {"proc": _start_redis(port, tmp_path)}
    monkeypatch.setenv("SALESFORECAST_REDIS", f"127.0.0.1:{port}")

    def stop() -> None:
        state["proc"].terminate()
        state["proc"].wait(10)

    def start() -> None:
        state["proc"] = _start_redis(port, tmp_path)

    yield stop, start
    if state["proc"].poll() is None:
        stop()


def test_redis_online_store_503_then_recovery(workdir, keys, tmp_path, private_redis):
    stop, start = private_redis
    settings = Settings(workdir=_copy_workdir(workdir, tmp_path / "redis"))
    summary = materialize(settings, options=StoreOptions(online_store="redis"))
    assert summary["online_store"] == "redis" and summary["rows_written"] > 0
    redis_forecaster = Forecaster(settings)  # the choice of online store is remembered
    assert redis_forecaster.reader.kind == "redis"
    redis_client = TestClient(create_app(redis_forecaster))
    body = _body(keys[:3])
    first = redis_client.post("/v1/forecast", json=body)
    assert first.status_code == 200

    stop()
    down = redis_client.post("/v1/forecast", json=body)
    assert down.status_code == 503 and down.json()["error"] == "online store unavailable"
    assert redis_client.get("/readyz").status_code == 503
    assert redis_client.get("/healthz").status_code == 200

    start()  # an empty Redis comes back: reload it, and the same server answers again
    materialize(settings, full=True)
    again = redis_client.post("/v1/forecast", json=body)
    assert again.status_code == 200 and again.json() == first.json()
