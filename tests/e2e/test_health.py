"""/health (liveness) and /health/ready (database and Redis answer), served outside Django."""

import httpx
import pytest

pytestmark = [pytest.mark.e2e]


def test_health_is_200_without_a_key(gateway):
    response = httpx.get(f"{gateway}/health")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}
    assert response.headers["content-type"] == "application/json"
    assert response.headers["x-request-id"].startswith("req_")


def test_health_answers_head(gateway):
    response = httpx.head(f"{gateway}/health")
    assert response.status_code == 200


def test_ready_checks_database_and_redis(gateway):
    response = httpx.get(f"{gateway}/health/ready")
    assert response.status_code == 200, response.text
    assert response.json() == {"status": "ok", "checks": {"database": True, "redis": True, "provider_keys": True}}


def test_health_with_a_wrong_method_is_405(gateway):
    response = httpx.post(f"{gateway}/health/ready")
    assert response.status_code == 405
    assert response.headers["allow"] == "GET"
    assert response.json()["error"]["type"] == "invalid_request_error"



def test_health_with_a_trailing_slash_is_the_same_route(gateway):
    response = httpx.get(f"{gateway}/health/ready/")
    assert response.status_code == 200 and response.json()["checks"]["redis"] is True


def test_anthropics_reachability_probe_is_answered_as_anthropic_answers_it(gateway):
    """Claude Code probes its base URL with `HEAD /api/hello` (unless non-essential traffic is off)."""
    assert httpx.head(f"{gateway}/api/hello").status_code == 200
    response = httpx.get(f"{gateway}/api/hello")
    assert (response.status_code, response.json()) == (200, {"message": "hello"})
