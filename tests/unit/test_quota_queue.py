"""The wait for a provider quota's room (gomodel/gateway/quotas.py), with a stand-in limiter: first come first
served within a process, bounded in time (QUOTA_QUEUE_MAX_WAIT) and in length (QUOTA_QUEUE_MAX)."""

import asyncio
import time

import pytest

from accounting.limits.ratelimits import Outcome
from gomodel.gateway import quotas
from gomodel.gateway.errors import GatewayError
from gomodel.gateway.limits import Admission
from providers.base import Quota, Target

TARGET = Target(id=99, name="openai", provider_type="openai", wire="openai", base_url="http://x", api_key="k",
                quota=Quota(rpm=1, tpm=None, concurrency=None))


class Limiter:
    """Refuses (retry in `retry_ms`) until `room` admissions are allowed, then admits one per free room."""

    def __init__(self, room=0, retry_ms=20):
        self.room, self.retry_ms, self.admitted, self.asked = room, retry_ms, [], 0
        self.in_flight = {}

    async def admit_scopes(self, attempt_id, scopes, tokens):
        self.asked += 1
        await asyncio.sleep(0)
        if self.room > 0:
            self.room -= 1
            self.admitted.append(attempt_id)
            return Outcome(True, "", None, 0, [])
        return Outcome(False, "requests", scopes[0], self.retry_ms, [])


class Runtime:
    def __init__(self, limiter):
        self.limits = limiter


@pytest.fixture(autouse=True)
def _lines(settings):
    quotas.LINES.clear()
    settings.QUOTA_QUEUE_MAX_WAIT = 0.5
    settings.QUOTA_QUEUE_MAX = 100
    yield
    quotas.LINES.clear()


def test_no_quota_for_the_model_asks_nothing():
    limiter = Limiter()
    target = Target(id=1, name="p", provider_type="openai", wire="openai", base_url="http://x", api_key="k",
                    quota=Quota(None, None, None, (("gpt-4o", 5, None, None),)))
    assert asyncio.run(quotas.acquire(Runtime(limiter), target, "gpt-4o-mini", "r", 0)) is None
    assert limiter.asked == 0


def test_waiters_are_served_in_arrival_order_and_the_wait_is_bounded(settings):
    limiter = Limiter()

    async def main():
        calls = [asyncio.ensure_future(quotas.acquire(Runtime(limiter), TARGET, "m", f"r{i}", 0)) for i in range(4)]
        await asyncio.sleep(0.05)
        limiter.room = 2  # room for two: the first two in line get it
        started = time.monotonic()
        results = await asyncio.gather(*calls)
        return results, time.monotonic() - started

    results, waited = asyncio.run(main())
    assert limiter.admitted == ["r0", "r1"]
    assert [type(r) for r in results] == [Admission, Admission, GatewayError, GatewayError]
    assert waited < 0.5 + 0.1  # never past QUOTA_QUEUE_MAX_WAIT
    assert results[2].code == "provider_quota_exceeded" and "provider openai" in results[2].message


def test_beyond_the_queue_bound_no_waiting(settings):
    settings.QUOTA_QUEUE_MAX = 1
    limiter = Limiter()

    async def main():
        first = asyncio.ensure_future(quotas.acquire(Runtime(limiter), TARGET, "m", "r0", 0))
        await asyncio.sleep(0.01)  # r0 waits in line
        started = time.monotonic()
        second = await quotas.acquire(Runtime(limiter), TARGET, "m", "r1", 0)
        quick = time.monotonic() - started
        first.cancel()
        return second, quick

    second, quick = asyncio.run(main())
    assert isinstance(second, GatewayError) and quick < 0.05


def test_a_retry_beyond_the_deadline_is_refused_at_once():
    limiter = Limiter(retry_ms=30_000)  # a 2-RPM quota's next unit
    started = time.monotonic()
    refused = asyncio.run(quotas.acquire(Runtime(limiter), TARGET, "m", "r", 0))
    assert isinstance(refused, GatewayError) and time.monotonic() - started < 0.05
    assert refused.headers[0] == (b"retry-after", b"30")
