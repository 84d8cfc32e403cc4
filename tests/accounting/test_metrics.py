"""GET /metrics: Prometheus text with the request counters and histograms, and the usage pipeline's
stream length, pending entries, spool size and drain lag."""

import re

import httpx
import pytest
from django.conf import settings as django_settings
from prometheus_client.parser import text_string_to_metric_families

from accounting.usage.drain import drain

pytestmark = [pytest.mark.e2e]


def scrape(gateway, **headers) -> dict:
    headers.setdefault("Authorization", f"Bearer {django_settings.GOMODEL_MASTER_KEY}")
    response = httpx.get(f"{gateway}/metrics", headers=headers)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain")
    samples = {}
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def value(samples, name, **labels):
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def test_metrics_count_requests_and_show_the_usage_pipeline(gateway, provider, tenant_key, usage_events, settings):
    before = scrape(gateway)
    key = tenant_key[2]
    for model in ("gpt-4o-mini", "gpt-4o-mini", "fail-400"):
        httpx.post(f"{gateway}/v1/chat/completions", headers={"Authorization": f"Bearer {key}"},
                   json={"model": model, "messages": [{"role": "user", "content": "Hi"}]})
    with httpx.stream("POST", f"{gateway}/v1/chat/completions", headers={"Authorization": f"Bearer {key}"},
                      json={"model": "gpt-4o-mini", "stream": True,
                            "messages": [{"role": "user", "content": "Hi"}]}) as response:
        response.read()
    usage_events(None, expect=4)
    after = scrape(gateway)

    def delta(name, **labels):
        return value(after, name, **labels) - value(before, name, **labels)

    assert delta("gomodel_requests_total", provider="openai", model="gpt-4o-mini", status="200") == 3
    assert delta("gomodel_requests_total", provider="openai", model="fail-400", status="400") == 1
    assert delta("gomodel_upstream_errors_total", provider="openai", error_type="invalid_request_error") == 1
    assert delta("gomodel_request_latency_seconds_count", provider="openai", model="gpt-4o-mini") == 3
    assert delta("gomodel_time_to_first_token_seconds_count", provider="openai", model="gpt-4o-mini") == 1
    assert delta("gomodel_tokens_total", provider="openai", model="gpt-4o-mini", kind="completion") == 18
    assert value(after, "gomodel_usage_stream_length") == 4
    assert value(after, "gomodel_usage_drain_lag_seconds") > 0
    assert value(after, "gomodel_usage_spool_events") == 0
    assert value(after, "gomodel_usage_redis_up") == 1

    drain()
    drained = scrape(gateway)
    assert value(drained, "gomodel_usage_stream_length") == 0
    assert value(drained, "gomodel_usage_stream_pending") == 0
    assert value(drained, "gomodel_usage_drain_lag_seconds") == 0
    assert value(drained, "gomodel_usage_last_drain_timestamp_seconds") > 0
    assert delta_drained(drained, after) == 4


def delta_drained(later, earlier):
    return value(later, "gomodel_usage_events_drained_total") - value(earlier, "gomodel_usage_events_drained_total")


def test_spool_size_is_a_metric(gateway, settings, transactional_db):
    import fcntl

    path = settings.USAGE_SPOOL_PATH
    # Hold the replay's lock: the gateway's periodic replay (every 5 s) must not move these events to
    # Redis between the write and the scrape.
    with open(path.with_name(path.name + ".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        path.write_bytes(b'{"request_id":"a"}\n{"request_id":"b"}\n')
        assert value(scrape(gateway), "gomodel_usage_spool_events") == 2


def test_metrics_token(gateway, settings, transactional_db):
    settings.METRICS_TOKEN = "s3cret"
    assert httpx.get(f"{gateway}/metrics").status_code == 401
    assert re.search(r"gomodel_usage_stream_length", httpx.get(
        f"{gateway}/metrics", headers={"Authorization": "Bearer s3cret"}).text)


@pytest.mark.parametrize("authorization", [None, "Bearer", "Bearer wrong", "Basic s3cret", "s3cret"])
def test_metrics_are_closed_by_default(gateway, settings, transactional_db, authorization):
    """#12 item 12: /metrics names providers, models and token volumes: not to anyone by default."""
    settings.METRICS_TOKEN = ""
    headers = {"Authorization": authorization} if authorization is not None else {}
    response = httpx.get(f"{gateway}/metrics", headers=headers)
    assert response.status_code == 401
    assert response.json()["error"]["type"] == "authentication_error"
    assert response.json()["error"]["code"] == "invalid_metrics_token"
    assert "gomodel_" not in response.text


def test_the_master_key_scrapes_and_metrics_public_opens(gateway, settings, transactional_db):
    settings.METRICS_TOKEN = "s3cret"
    master = httpx.get(f"{gateway}/metrics", headers={"Authorization": f"Bearer {settings.GOMODEL_MASTER_KEY}"})
    assert master.status_code == 200 and "gomodel_usage_stream_length" in master.text
    settings.METRICS_PUBLIC = True
    assert httpx.get(f"{gateway}/metrics").status_code == 200


def observed(provider, times=2):
    from accounting.usage.events import StreamEvent
    from gomodel.gateway import metrics

    for _ in range(times):
        metrics.observe_event(StreamEvent(request_id="req_m", provider=provider, model="gpt-4o-mini", status=200,
                                          latency_ms=120.0, prompt_tokens=3, completion_tokens=4))


def rendered(provider) -> dict:
    from gomodel.gateway import metrics

    body, _ = metrics.render(None, 0)
    samples = [s for family in text_string_to_metric_families(body.decode()) for s in family.samples]
    return {(s.name, s.labels.get("kind")): s.value for s in samples if s.labels.get("provider") == provider}


def test_events_with_the_same_labels_add_up_in_one_child():
    """observe_event keeps the labelled children itself (.labels() locks and builds tuples per call): the
    cached child is the metric's own, and two events count twice."""
    from gomodel.gateway import metrics

    observed("metrics-same-labels")
    counts = rendered("metrics-same-labels")
    assert counts[("gomodel_requests_total", None)] == 2
    assert counts[("gomodel_request_latency_seconds_count", None)] == 2
    assert counts[("gomodel_tokens_total", "prompt")] == 6 and counts[("gomodel_tokens_total", "completion")] == 8
    key = ("metrics-same-labels", "gpt-4o-mini", "200")
    assert metrics._REQUESTS[key] is metrics.REQUESTS.labels(*key)


def test_cached_children_add_up_across_processes(tmp_path, monkeypatch):
    """PROMETHEUS_MULTIPROC_DIR (`make run`): each process's cached children write to its own files and
    /metrics adds the processes up."""
    import os
    import subprocess
    import sys

    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(tmp_path), "DJANGO_SETTINGS_MODULE": "gomodel.settings"}
    script = "import django; django.setup(); from tests.accounting.test_metrics import observed; observed('metrics-mp')"
    for _ in range(2):
        subprocess.run([sys.executable, "-c", script], env=env, check=True, cwd=django_settings.BASE_DIR)
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path))
    counts = rendered("metrics-mp")
    assert counts[("gomodel_requests_total", None)] == 4
    assert counts[("gomodel_tokens_total", "completion")] == 16
