"""API error shapes and metrics labels, with a stand-in predictor (no model, no store)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from fastapi.testclient import TestClient

from salesforecast.serving.app import create_app


class _NoForecasts:
    max_horizon = 8
    model_version = "test"

    def forecast(self, keys, horizon):  # never reached by these requests
        raise AssertionError("validation should have refused the request")

    def check_store(self) -> None:
        pass


def client() -> TestClient:
    return TestClient(create_app(_NoForecasts()))


def test_keys_and_horizon_are_strict_bounded_integers() -> None:
    c = client()
    cases = [
        ({"series": [{"store": True, "dept": 1}]}, "series.0.store"),
        ({"series": [{"store": 99999999999999999999, "dept": 8}]}, "series.0.store"),
        ({"series": [{"store": 1, "dept": "8"}]}, "series.0.dept"),
        ({"series": [{"store": 1, "dept": 8}], "horizon": "3"}, "horizon"),
    ]
    for body, field in cases:
        response = c.post("/v1/forecast", json=body)
        assert response.status_code == 422, body
        assert [d["field"] for d in response.json()["detail"]] == [field]


def test_malformed_json_names_the_body_not_a_byte_offset() -> None:
    response = client().post("/v1/forecast", content=b"{bad", headers={"content-type": "application/json"})
    assert response.status_code == 422
    assert response.json()["detail"] == [{"field": "body", "message": "JSON decode error"}]


def test_unknown_paths_and_methods_answer_in_the_error_shape() -> None:
    c = client()
    assert c.get("/nowhere").json() == {"error": "not found", "detail": "GET /nowhere"}
    response = c.get("/v1/forecast")
    assert response.status_code == 405 and response.json()["error"] == "method not allowed"


def test_scanned_urls_add_no_metric_labels() -> None:
    c = client()
    for i in range(5):
        c.get(f"/random-{i}")
    c.get("/healthz")
    lines = [line for line in c.get("/metrics").text.splitlines() if not line.startswith("#")]
    assert not any("random" in line for line in lines)
    assert 'salesforecast_requests_total{route="unmatched",status="404"} 5.0' in lines
    assert 'salesforecast_requests_total{route="/healthz",status="200"} 1.0' in lines


def test_every_app_counts_its_own_requests_even_after_feast_is_imported() -> None:
    # Feast first, as in a notebook: importing it switches prometheus_client to shared files.
    code = """
import feast, sys
sys.path.insert(0, sys.argv[1])
from test_api_errors import client
first, second = client(), client()
for c in (first, first, second):
    c.get("/healthz")
print(second.get("/metrics").text)
"""
    done = subprocess.run(
        [sys.executable, "-c", code, str(Path(__file__).parent)], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert 'salesforecast_requests_total{route="/healthz",status="200"} 1.0' in done.stdout.splitlines()
