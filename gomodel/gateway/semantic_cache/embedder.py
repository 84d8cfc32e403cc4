"""The embedding of a request's text: SEMANTIC_CACHE_EMBED_MODEL asked through the gateway's own embeddings
route — routing, the embeddings plug-in and adapter, send_upstream (failover, retries, breaker) and the upstream
client — never a second HTTP stack. It is billed to the calling tenant and key as one usage event of its own,
endpoint `cache.embed`, request id `<the call's id>.e`, priced like any embeddings call (into the caller's budget
counters with its event when it has a budget, admitted by those budgets first like a call)."""

import asyncio
import logging
import time
from dataclasses import dataclass
from typing import Any

import orjson

from accounting.usage.events import TEXT_LIMITS

from .. import metrics
from ..budgets import charge, release, reserve
from ..errors import GatewayError
from ..protocols.embeddings import EmbeddingsExchange
from ..routing import candidates
from ..upstream import send_upstream
from ..usage_record import UsageRecord

log = logging.getLogger(__name__)
ENDPOINT = "cache.embed"


@dataclass
class _Caller:
    """What a UsageRecord reads of the call it bills (pipeline.Call's request_id, auth, started)."""

    request_id: str
    auth: Any
    started: float
    budget: None = None


async def embed(runtime, req, principal, model: str, text: str) -> list[float] | None:
    """The vector of `text`, or None when the embedding failed (the call then goes on as a miss). The usage
    event is emitted whatever happened, once an upstream was tried."""
    request_id = f"{req.request_id}.e"[:TEXT_LIMITS["request_id"]]
    exchange = EmbeddingsExchange(req, {"model": model, "input": text})
    caller = _Caller(request_id, principal, time.perf_counter())
    record: UsageRecord | None = None
    try:
        chain = await candidates(runtime.registry, runtime.breaker, model, None)
        target, resolved = chain[0]
        record = UsageRecord(caller, target, model, resolved, ENDPOINT, False, exchange.prompt)
        if principal.budgets:
            # Admitted by the caller's budgets like a call (a spent budget pays no embedding: 429 → a miss, and the
            # call's own admission refuses it); its cost goes into the counters with its event.
            record.budget = await reserve(runtime, principal, request_id, target, resolved, exchange.prompt_tokens(),
                                          0, False)
        response, adapter = await send_upstream(runtime, chain, exchange.build, False, record)
        body, _ = exchange.read(adapter, record, response.content)
        vector = orjson.loads(body)["data"][0]["embedding"]
        if not isinstance(vector, list) or not vector or not all(isinstance(x, (int, float)) for x in vector):
            raise ValueError("no embedding in the answer")
        return [float(x) for x in vector]
    except asyncio.CancelledError:  # SEMANTIC_CACHE_TIMEOUT (or the call's end): billed as what it reported, none
        if record is not None:
            record.status, record.error_type = 504, "semantic_cache_timeout"
        raise
    except GatewayError as error:
        if record is not None:
            record.status, record.error_type = error.status, error.type
        log.warning("semantic cache: embedding with %s failed (%s); the call goes on as a miss", model, error)
        return None
    except (ValueError, TypeError, KeyError, IndexError, AttributeError) as exc:
        if record is not None:
            record.status, record.error_type = 502, "provider_error"
        log.warning("semantic cache: unreadable embedding from %s (%s); the call goes on as a miss", model, exc)
        return None
    finally:
        if record is not None and record.attempts:
            event = record.event()
            if record.budget is not None:
                try:
                    charge(runtime, record, event)
                except Exception:  # pricing must never cost an event (the drain prices it then)
                    log.exception("could not price usage event %s for its budget", request_id)
            try:
                metrics.observe_event(event, runtime.registry.knows)
            except Exception:  # metrics must never cost an event
                log.exception("could not count usage event %s in the metrics", request_id)
            if record.quota is not None:
                record.quota.used = event.total_tokens
            runtime.usage.emit(event)
        if record is not None and record.quota is not None:
            record.quota.finish()  # the embedding provider's quota claim: TPM reconciled, slot freed
        if record is not None and record.budget is not None:
            release(runtime, record.budget)  # unless the event's MULTI clears it (charge marked it settled)
