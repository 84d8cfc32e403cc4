"""The rate limiter's Lua scripts against the real Redis: GCRA counts (a burst of the limit, then a smooth
refill), token reservations and their reconciliation, concurrency slots and their expiry, peeking without
consuming, and EVALSHA."""

import time
import uuid

import pytest

from accounting.limits import ratelimits as rl


@pytest.fixture
def prefix(redis_sync):
    prefix = f"gomodel:test:rl:{uuid.uuid4().hex}"
    yield prefix
    for key in redis_sync.scan_iter(match=prefix + "*"):
        redis_sync.delete(key)


def admit(client, scopes, tokens=0, request_id=None, window=rl.WINDOW_MS, ttl=60_000, admit=True):
    keys, args = rl.admit_args(request_id or uuid.uuid4().hex, scopes, tokens, ttl, admit)
    args[1] = window
    return rl.read_outcome(scopes, client.eval(rl.ADMIT, len(keys), *keys, *args))


def settle(client, scopes, request_id, used, window=rl.WINDOW_MS):
    keys = [k for s in scopes for k in (f"{s.base}:tk", f"{s.base}:conc")]
    client.eval(rl.SETTLE, len(keys), *keys, request_id, used, window, *(s.tpm or -1 for s in scopes))


def test_rpm_admits_exactly_the_limit_then_names_the_limit_and_when_to_retry(redis_sync, prefix):
    key = rl.key_scope(prefix, 1, 7, 3, None, None)
    outcomes = [admit(redis_sync, [key]) for _ in range(5)]
    assert [o.allowed for o in outcomes] == [True, True, True, False, False]
    assert [o.state[0]["requests"]["remaining"] for o in outcomes[:3]] == [2, 1, 0]
    refused = outcomes[3]
    assert refused.denied == "requests" and refused.denied_scope == key
    assert 19_000 < refused.retry_ms <= 20_000  # one request's share of the minute: 60 s / 3
    assert refused.state[0]["requests"]["remaining"] == 0
    assert 59_000 < refused.state[0]["requests"]["reset_ms"] <= 60_000  # a refusal counts nothing


def test_the_limit_refills_smoothly(redis_sync, prefix):
    key = rl.key_scope(prefix, 1, 7, 2, None, None)
    assert admit(redis_sync, [key], window=300).allowed
    assert admit(redis_sync, [key], window=300).allowed
    assert not admit(redis_sync, [key], window=300).allowed
    time.sleep(0.16)  # one request's share of the window (150 ms) came back, not the whole window
    assert admit(redis_sync, [key], window=300).allowed
    assert not admit(redis_sync, [key], window=300).allowed
    time.sleep(0.35)  # idle for a window: the full burst again
    assert admit(redis_sync, [key], window=300).allowed
    assert admit(redis_sync, [key], window=300).allowed


def test_key_and_tenant_both_count_and_a_refusal_by_one_consumes_neither(redis_sync, prefix):
    key = rl.key_scope(prefix, 1, 7, 10, None, None)
    other_key = rl.key_scope(prefix, 1, 8, 10, None, None)
    tenant = rl.tenant_scope(prefix, 1, 3, None, None)
    assert all(admit(redis_sync, [key, tenant]).allowed for _ in range(2))
    assert admit(redis_sync, [other_key, tenant]).allowed
    refused = admit(redis_sync, [key, tenant])
    assert refused.denied == "requests" and refused.denied_scope is tenant
    assert all(0 < state["requests"]["reset_ms"] <= 60_000 for state in refused.state)  # both scopes' reset
    assert refused.state[0]["requests"]["remaining"] == 8  # the key: 2 of 10 used, the refusal counted nowhere
    assert refused.state[1]["requests"]["remaining"] == 0


def test_tpm_reserves_then_reconciles_to_the_reported_usage(redis_sync, prefix):
    key = rl.key_scope(prefix, 1, 7, None, 100, None)
    first = admit(redis_sync, [key], tokens=60, request_id="a")
    assert first.allowed and first.state[0]["tokens"]["remaining"] == 40
    refused = admit(redis_sync, [key], tokens=60, request_id="b")
    assert refused.denied == "tokens" and not refused.allowed
    assert 11_000 < refused.retry_ms <= 12_000  # when 20 more tokens have refilled: 20 × 60 s / 100
    settle(redis_sync, [key], "a", 25)  # the upstream reported 25 tokens
    assert admit(redis_sync, [key], tokens=0, admit=False).state[0]["tokens"]["remaining"] in (75, 76)
    assert admit(redis_sync, [key], tokens=60, request_id="b").allowed
    assert admit(redis_sync, [key], tokens=0, admit=False).state[0]["tokens"]["remaining"] in (15, 16)


def test_a_request_larger_than_the_tpm_limit_waits_for_an_empty_window(redis_sync, prefix):
    key = rl.key_scope(prefix, 1, 7, None, 50, None)
    assert admit(redis_sync, [key], tokens=500, request_id="big").allowed  # reserves the whole limit
    assert not admit(redis_sync, [key], tokens=1).allowed


def test_tokens_refill_over_the_window(redis_sync, prefix):
    key = rl.key_scope(prefix, 1, 7, None, 100, None)
    assert admit(redis_sync, [key], tokens=90, window=300).allowed
    assert not admit(redis_sync, [key], tokens=20, window=300).allowed
    time.sleep(0.35)
    assert admit(redis_sync, [key], tokens=20, window=300).allowed


def test_a_settle_after_its_reservation_expired_gives_nothing_back(redis_sync, prefix):
    key = rl.key_scope(prefix, 1, 7, None, 100, None)
    assert admit(redis_sync, [key], tokens=90, request_id="a").allowed
    redis_sync.hdel(f"{key.base}:tk", "a")  # as when its reservation outlived the hash (a window later)
    settle(redis_sync, [key], "a", 0)
    assert admit(redis_sync, [key], tokens=0, admit=False).state[0]["tokens"]["remaining"] in (10, 11)


def test_concurrency_slots_are_freed_by_settle_or_expire(redis_sync, prefix):
    key = rl.key_scope(prefix, 1, 7, None, None, 2)
    assert admit(redis_sync, [key], request_id="a").allowed
    assert admit(redis_sync, [key], request_id="b", ttl=200).allowed
    refused = admit(redis_sync, [key], request_id="c")
    assert refused.denied == "concurrency" and refused.retry_ms == 1000
    settle(redis_sync, [key], "a", 0)
    assert admit(redis_sync, [key], request_id="c").allowed
    assert not admit(redis_sync, [key], request_id="d").allowed
    time.sleep(0.25)  # "b" was held by a process that died: its slot expires
    assert admit(redis_sync, [key], request_id="d").allowed


def test_beat_keeps_a_live_slot_from_expiring(redis_sync, prefix):
    key = rl.key_scope(prefix, 1, 7, None, None, 1)
    assert admit(redis_sync, [key], request_id="long", ttl=300).allowed
    for _ in range(3):
        time.sleep(0.15)
        redis_sync.eval(rl.BEAT, 1, f"{key.base}:conc", 300, "long")
    assert not admit(redis_sync, [key], request_id="other").allowed


def test_peek_consumes_nothing(redis_sync, prefix):
    key = rl.key_scope(prefix, 1, 7, 2, 100, 1)
    assert admit(redis_sync, [key], tokens=30).allowed
    for _ in range(3):
        state = admit(redis_sync, [key], tokens=99, admit=False).state[0]
    assert state["requests"] == {"limit": 2, "remaining": 1, "reset_ms": state["requests"]["reset_ms"]}
    assert state["tokens"]["remaining"] == 70 and state["concurrency"]["remaining"] == 0
    assert 0 < state["requests"]["reset_ms"] <= 60_000


def test_registered_script_runs_by_evalsha_and_survives_a_script_flush(redis_sync, prefix):
    script = redis_sync.register_script(rl.ADMIT)
    key = rl.key_scope(prefix, 1, 7, 5, None, None)
    keys, args = rl.admit_args("x", [key], 0, 60_000, True)
    redis_sync.script_flush()  # as after a Redis restart: EVALSHA answers NOSCRIPT, redis-py loads it again
    assert rl.read_outcome([key], script(keys=keys, args=args)).allowed
    assert redis_sync.script_exists(script.sha) == [True]


def test_current_usage_reports_limits_remaining_and_reset(redis_sync, prefix, settings):
    key = rl.key_scope(prefix, 1, 7, 5, None, None)
    tenant = rl.tenant_scope(prefix, 1, None, None, None)
    admit(redis_sync, [key])
    key_report, tenant_report = rl.current_usage([key, tenant])
    assert key_report["requests"]["limit"] == 5 and key_report["requests"]["remaining"] == 4
    assert 0 < key_report["requests"]["reset_seconds"] <= 60
    assert key_report["tokens"] == {"limit": None, "remaining": None, "reset_seconds": None}
    assert tenant_report["requests"]["limit"] is None
