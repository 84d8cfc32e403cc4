"""A bounded, mixed load against a gateway in front of tests/fake_upstream.py, and the checks that the
stored usage equals what the clients were told.

Each request is one of KINDS (round robin): JSON, streams with and without `include_usage`, a tool
call stream, a client that hangs up after a few chunks, an upstream that fails (HTTP 500, through its
own provider config so that its circuit breaker cannot trip the others) and an upstream stream that
breaks mid-way.
"""

import asyncio
from collections import Counter
from dataclasses import dataclass, field

import httpx
import orjson

KINDS = ("json", "stream_usage", "stream_plain", "hangup", "json", "fail", "break", "tool_stream")
HANGUP_AFTER_CHUNKS = 3
# What the fake upstream reports (tests/fake_upstream.py).
UPSTREAM_USAGE = {"json": (11, 6, 17, 2), "stream_usage": (11, 6, 17, 0), "stream_plain": (11, 6, 17, 0),
                  "tool_stream": (11, 3, 14, 0)}


@dataclass
class Outcome:
    kind: str
    request_id: str
    status: int
    seen: tuple | None = None  # (prompt, completion, total, cached) as the client was told, if it was
    text: str = ""  # the content the client received
    errors: list = field(default_factory=list)


def _body(kind: str, i: int) -> dict:
    messages = [{"role": "user", "content": f"load request {i}"}]
    if kind == "json":
        return {"model": "gpt-4o-mini", "messages": messages}
    if kind == "fail":
        return {"model": "fail-500", "messages": messages, "provider": "flaky"}
    model = {"hangup": "long-stream", "break": "break-stream", "tool_stream": "tool-model"}.get(kind, "gpt-4o-mini")
    body = {"model": model, "messages": messages, "stream": True}
    if kind in ("stream_usage", "tool_stream"):
        body["stream_options"] = {"include_usage": True}
    return body


def _usage_tuple(usage: dict) -> tuple:
    cached = (usage.get("prompt_tokens_details") or {}).get("cached_tokens") or 0
    return usage["prompt_tokens"], usage["completion_tokens"], usage["total_tokens"], cached


async def one(client: httpx.AsyncClient, base_url: str, key: str, kind: str, i: int) -> Outcome:
    url = f"{base_url}/v1/chat/completions"
    headers = {"Authorization": f"Bearer {key}"}
    body = _body(kind, i)
    if not body.get("stream"):
        response = await client.post(url, headers=headers, json=body)
        outcome = Outcome(kind, response.headers["x-request-id"], response.status_code)
        if response.status_code == 200:
            data = response.json()
            outcome.seen = _usage_tuple(data["usage"])
            outcome.text = data["choices"][0]["message"]["content"] or ""
        return outcome
    async with client.stream("POST", url, headers=headers, json=body) as response:
        outcome = Outcome(kind, response.headers["x-request-id"], response.status_code)
        chunks = 0
        async for line in response.aiter_lines():
            if not line.startswith("data: ") or line == "data: [DONE]":
                continue
            chunk = orjson.loads(line[6:])
            if "error" in chunk:
                outcome.errors.append(chunk["error"])
                continue
            chunks += 1
            if chunk.get("usage"):
                outcome.seen = _usage_tuple(chunk["usage"])
            for choice in chunk.get("choices") or ():
                outcome.text += (choice.get("delta") or {}).get("content") or ""
            if kind == "hangup" and chunks >= HANGUP_AFTER_CHUNKS:
                break  # leaving the block closes the connection: the client hung up
    return outcome


async def run_load(base_url: str, key: str, count: int, concurrency: int = 32, timeout: float = 120.0,
                   on_progress=None) -> list[Outcome]:
    """`count` requests, `concurrency` at a time; bounded by `timeout` seconds overall."""
    semaphore = asyncio.Semaphore(concurrency)
    done = 0
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(timeout=30.0, limits=limits) as client:
        async def guarded(i):
            nonlocal done
            async with semaphore:
                outcome = await one(client, base_url, key, KINDS[i % len(KINDS)], i)
            done += 1
            if on_progress is not None:
                await on_progress(done)
            return outcome

        return await asyncio.wait_for(asyncio.gather(*(guarded(i) for i in range(count))), timeout)


def expected_status(kind: str) -> int:
    return 502 if kind in ("fail", "break") else (499 if kind == "hangup" else 200)


def check_events(outcomes: list[Outcome], events: dict) -> dict:
    """Assert that the stored events are exactly the requests, with what their clients were told.
    Returns a summary of the numbers."""
    from accounting.usage.estimate import approximate_text_tokens

    assert len({o.request_id for o in outcomes}) == len(outcomes)
    assert set(events) == {o.request_id for o in outcomes}, (
        f"{len(set(events) - {o.request_id for o in outcomes})} unknown, "
        f"{len({o.request_id for o in outcomes} - set(events))} missing")
    reported = {"prompt": 0, "completion": 0, "total": 0, "cached": 0}
    told = {"prompt": 0, "completion": 0, "total": 0, "cached": 0}
    estimated = Counter()
    for outcome in outcomes:
        event = events[outcome.request_id]
        kind = outcome.kind
        if kind in ("json", "stream_usage", "tool_stream"):
            assert outcome.status == 200 and outcome.seen == UPSTREAM_USAGE[kind], outcome
        if kind in UPSTREAM_USAGE:
            assert event["usage_source"] == "reported", (outcome, event)
            expected = outcome.seen or UPSTREAM_USAGE[kind]  # a client that did not ask saw no numbers
            got = (event["prompt_tokens"], event["completion_tokens"], event["total_tokens"], event["cached_tokens"])
            assert got == expected, (outcome, event)
            for name, value in zip(("prompt", "completion", "total", "cached"), expected):
                told[name] += value
            for name, value in zip(("prompt", "completion", "total", "cached"), got):
                reported[name] += value
        elif kind == "fail":
            assert outcome.status == 502 and event["status"] == 502, (outcome, event)
            assert event["usage_source"] == "none" and event["total_tokens"] == 0, event
        else:  # hangup, break: billed for what was relayed, marked estimated
            assert event["usage_source"] == "estimated", (outcome, event)
            assert event["status"] == expected_status(kind), (outcome, event)
            assert event["completion_tokens"] >= approximate_text_tokens(outcome.text) > 0, (outcome, event)
            assert event["completion_tokens"] <= approximate_text_tokens("Hello from the fake upstream!" * 50), event
            estimated[kind] += 1
    assert reported == told
    return {"requests": len(outcomes), "kinds": dict(Counter(o.kind for o in outcomes)),
            "estimated": dict(estimated), "reported_tokens": reported}


def stored_events() -> dict:
    from accounting.models import UsageEvent

    fields = ("request_id", "status", "usage_source", "prompt_tokens", "completion_tokens", "total_tokens",
              "cached_tokens", "reasoning_tokens", "cost", "tenant_id")
    return {row["request_id"]: row for row in UsageEvent.objects.values(*fields)}


def check_rollups_match_events():
    """The daily roll-ups add up to exactly the stored events (nothing added twice, nothing missed)."""
    from django.db.models import Count, Sum

    from accounting.models import UsageDaily, UsageEvent
    from accounting.prices.book import to_e10

    fields = ("prompt_tokens", "completion_tokens", "total_tokens", "cached_tokens", "reasoning_tokens")
    events = UsageEvent.objects.aggregate(requests=Count("id"), **{f: Sum(f) for f in fields})
    rollups = UsageDaily.objects.aggregate(requests=Sum("requests"), **{f: Sum(f) for f in fields})
    assert events == rollups, (events, rollups)
    cost_e10 = sum(to_e10(c) for c in UsageEvent.objects.exclude(cost=None).values_list("cost", flat=True))
    assert UsageDaily.objects.aggregate(c=Sum("cost_e10"))["c"] == cost_e10
    return events
