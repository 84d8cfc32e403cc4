"""Coalescing: concurrent identical misses make one upstream call — in one gateway process (the leader's
future) and across two gateway processes sharing Redis (a lease) — and a leader that fails fans nothing
out: each follower goes upstream itself."""

import concurrent.futures
import threading

import httpx
import pytest

from tests.e2e import test_guarantee_matrix as matrix
from tests.e2e.test_guarantee_matrix import CHAT_JSON, CHAT_STREAM, EMBEDDINGS, MESSAGES_STREAM, Streamed, call

pytestmark = [pytest.mark.e2e]
targets, make_key = matrix.targets, matrix.make_key


def together(n: int, one) -> list:
    """n calls released at once (a barrier), answers in order."""
    barrier = threading.Barrier(n)

    def go(i):
        barrier.wait()
        return one(i)

    with concurrent.futures.ThreadPoolExecutor(n) as pool:
        return list(pool.map(go, range(n)))


def chat_posts(upstream) -> int:
    return len(upstream.chat_requests())


@pytest.mark.parametrize("row", [CHAT_JSON, CHAT_STREAM, MESSAGES_STREAM], ids=lambda r: r.name)
def test_identical_concurrent_misses_make_one_upstream_call(gateway, targets, make_key, upstream, usage_events,
                                                            row):
    key = make_key(cache_mode="exact")
    body = row.body("delay-gpt-4o-mini", "together")  # the upstream takes 0.5 s
    before = chat_posts(upstream)
    answers = together(30, lambda i: call(gateway, row, key, body))
    assert chat_posts(upstream) == before + 1
    assert all(matrix.ok(a) for a in answers)
    labels = sorted(a.headers["x-gomodel-cache"] for a in answers)
    assert labels == ["hit-exact"] * 29 + ["miss"]
    if row.stream:
        assert len({a.text for a in answers}) == 1 and answers[0].text
    events = [usage_events(matrix.request_id(a))[0] for a in answers]
    assert sorted(str(e["cache"]) for e in events) == ["None"] + ["exact"] * 29
    assert {e["cost"] for e in events if e["cache"]} == {"0"}


def test_a_failing_leader_fans_nothing_out(gateway, targets, make_key, upstream, settings):
    settings.RETRY_MAX = 0
    upstream.flaky_failures = 1  # the first call that reaches the upstream fails (503), the others succeed
    key = make_key(cache_mode="exact")
    body = CHAT_JSON.body("delay-flaky", "leader fails")
    before = chat_posts(upstream)
    answers = together(10, lambda i: call(gateway, CHAT_JSON, key, body))
    statuses = sorted(a.status_code for a in answers)
    assert statuses == [200] * 9 + [502], statuses  # only the leader got its failure
    assert 2 <= chat_posts(upstream) - before <= 10  # the followers went upstream themselves


def test_no_cache_and_no_store_requests_do_not_wait(gateway, targets, make_key, upstream):
    key = make_key(cache_mode="exact")
    body = EMBEDDINGS.body("text-embedding-3-small", "independent")
    answers = together(4, lambda i: httpx.post(gateway + EMBEDDINGS.path, json=body, timeout=20, headers={
        "Authorization": f"Bearer {key}", "Cache-Control": "no-store"}))
    assert [a.headers["x-gomodel-cache"] for a in answers] == ["bypass"] * 4
    assert len([r for r in upstream.requests if r["path"].endswith("/embeddings")]) >= 4
    assert not isinstance(answers[0], Streamed)
