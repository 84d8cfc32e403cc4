"""Stored /v1/responses answers at run time: written in the background after the client has its
answer, read for `previous_response_id`, and served by GET / DELETE /v1/responses/{id} and
GET /v1/responses/{id}/input_items. Every read is scoped to the caller's tenant: another tenant's
id is a 404, exactly like an id that never existed."""

import asyncio
import functools
import logging
import re

import orjson
from asgiref.sync import sync_to_async
from django.conf import settings

from accounting.stored_responses import services as responses_store
from providers.openai_compat import responses as wire

from .errors import NOT_FOUND, GatewayError, invalid
from .http import Request
from .runtime import get_runtime
from .usage_views import _query

log = logging.getLogger(__name__)
MAX_PAGE = 100
RESPONSE_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")  # anything else (a NUL byte, 1 MB of text) names no response

# Writes not finished yet, by response id: a read of that id in this process waits for its write, so
# that a client asking for a response right after receiving it finds it. Registered before the answer
# is sent.
_pending: dict[str, asyncio.Future] = {}
_writes: set[asyncio.Task] = set()  # strong references until each write ends


def _save(principal, response_id, items, response, previous):
    responses_store.do_store_response(
        response_id, principal.tenant_id, principal.key_id, response.get("model") or "",
        response.get("provider") or "", items, response, previous, settings.RESPONSES_RETENTION_DAYS)


class PendingWrite:
    """A response about to be stored. `write` runs after the client has its answer (or its whole
    stream): the row costs store=true requests one thread hop, off the request's path; store=false
    requests never make one."""

    def __init__(self, principal, response_id: str):
        self.principal = principal
        self.id = response_id
        self.done = asyncio.get_running_loop().create_future()
        _pending[response_id] = self.done

    def write(self, items: list[dict], response: dict, previous: str | None) -> None:
        async def run():
            try:
                await sync_to_async(_save, thread_sensitive=True)(self.principal, self.id, items, response, previous)
            except Exception:  # the client has its answer; a lost row only means no later GET
                log.exception("could not store response %s", self.id)
            finally:
                self.abandon()

        task = asyncio.ensure_future(run())
        _writes.add(task)
        task.add_done_callback(_writes.discard)

    def abandon(self) -> None:
        if not self.done.done():
            self.done.set_result(None)
        if _pending.get(self.id) is self.done:
            del _pending[self.id]


async def _written(response_id: str) -> None:
    pending = _pending.get(response_id)
    if pending is not None and pending.get_loop() is asyncio.get_running_loop():
        await asyncio.shield(pending)


def _not_found(response_id: str, param: str = "response_id") -> GatewayError:
    return GatewayError(404, NOT_FOUND, f"No response with id '{response_id[:64]}' was found.", param=param,
                        code="response_not_found")


async def _read(principal, response_id: str, shape, param: str = "response_id"):
    """The caller's stored response, passed through `shape` in the ORM's thread: what it does grows with
    the stored conversation, so it stays off the event loop."""
    if not RESPONSE_ID.fullmatch(response_id):
        raise _not_found(response_id, param)
    await _written(response_id)

    def read():
        stored = responses_store.find_response(principal.tenant_id, response_id)
        if stored is None:
            raise _not_found(response_id, param)
        return shape(stored)

    return await sync_to_async(read, thread_sensitive=True)()


def _context(stored) -> list[dict]:
    items = list(stored.input_items) + wire.replayable(stored.response.get("output") or [])
    # The expanded request must stay within what one request may carry (and what the loop then handles).
    if len(orjson.dumps(items)) > settings.BODY_SIZE_LIMIT:
        raise invalid(f"The conversation of '{stored.id}' is larger than BODY_SIZE_LIMIT "
                      f"({settings.BODY_SIZE_LIMIT} bytes); start a new one or send the items you need as input.",
                      param="previous_response_id", code="context_too_large")
    return items


async def load_previous(principal, response_id: str) -> list[dict]:
    """The context a continued conversation starts from: the stored input and output items (one read)."""
    return await _read(principal, response_id, _context, param="previous_response_id")


async def retrieve_response(req: Request, response_id: str):
    principal = await get_runtime().keys.authenticate(req.headers)
    await req.respond(200, await _read(principal, response_id, lambda stored: orjson.dumps(stored.response)))


async def delete_response(req: Request, response_id: str):
    principal = await get_runtime().keys.authenticate(req.headers)
    if not RESPONSE_ID.fullmatch(response_id):
        raise _not_found(response_id)
    await _written(response_id)
    deleted = await sync_to_async(responses_store.do_delete_response, thread_sensitive=True)(principal.tenant_id,
                                                                                             response_id)
    if not deleted:
        raise _not_found(response_id)
    await req.respond(200, orjson.dumps({"id": response_id, "object": "response.deleted", "deleted": True}))


def _page_params(req: Request) -> tuple[int, str, str | None]:
    query = _query(req)
    limit = query.get("limit", "20")
    if not limit.isdigit() or not 1 <= int(limit) <= MAX_PAGE:
        raise invalid(f"'limit' must be an integer from 1 to {MAX_PAGE}.", param="limit", code="invalid_value")
    order = query.get("order", "desc")
    if order not in ("asc", "desc"):
        raise invalid("'order' must be 'asc' or 'desc'.", param="order", code="invalid_value")
    return int(limit), order, query.get("after")


def _item_page(limit: int, order: str, after: str | None, stored) -> bytes:
    items = wire.listed_items(stored.input_items, stored.id)
    if order == "desc":
        items.reverse()
    if after is not None:
        ids = [item["id"] for item in items]
        if after not in ids:
            raise invalid(f"'after' names no input item of response '{stored.id}'.", param="after",
                          code="invalid_value")
        items = items[ids.index(after) + 1:]
    page = items[:limit]
    return orjson.dumps({"object": "list", "data": page, "first_id": page[0]["id"] if page else None,
                         "last_id": page[-1]["id"] if page else None, "has_more": len(items) > limit})


async def list_input_items(req: Request, response_id: str):
    principal = await get_runtime().keys.authenticate(req.headers)
    limit, order, after = _page_params(req)
    await req.respond(200, await _read(principal, response_id, functools.partial(_item_page, limit, order, after)))


def routes(rest: str) -> dict | None:
    """The methods for a path under /v1/responses/: `{id}` or `{id}/input_items`."""
    parts = rest.split("/")
    if len(parts) == 1 and parts[0]:
        response_id = parts[0]
        return {"GET": lambda req: retrieve_response(req, response_id),
                "DELETE": lambda req: delete_response(req, response_id)}
    if len(parts) == 2 and parts[0] and parts[1] == "input_items":
        response_id = parts[0]
        return {"GET": lambda req: list_input_items(req, response_id)}
    return None
