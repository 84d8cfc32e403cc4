"""/v1/batches proxied to an OpenAI-format provider, owned like files (accounting.models.ProviderBatch): a batch
is made from one of the caller's own files (another tenant's `input_file_id` is a 404) on the provider that
file lives on; retrieve and cancel of another tenant's batch are a 404 without asking the provider, and the
list shows the tenant's own batches only (as the provider last described them). A key or tenant whose budget
is spent cannot create one. The poller
(accounting/provider_batches/tasks.py) bills a finished batch: one usage event per result line."""

import re

import orjson
from asgiref.sync import sync_to_async
from django.conf import settings

from accounting.provider_batches import services as batches_store
from accounting.provider_files import services as files_store

from .budgets import release, reserve
from .errors import NOT_FOUND, GatewayError, invalid
from .files import answer_object, created_object, page_limit, provider_target, send_to_provider
from .http import Request
from .json_body import parse_json_object
from .runtime import get_runtime
from .usage_views import _query

BATCH_ID = re.compile(r"[A-Za-z0-9_.-]{1,255}")
MAX_PAGE = 100  # OpenAI's own cap for a batches page


def _not_found(batch_id: str) -> GatewayError:
    return GatewayError(404, NOT_FOUND, f"No batch with id '{batch_id[:64]}' was found.", param="batch_id",
                        code="batch_not_found")


async def create_batch(req: Request) -> None:
    runtime = get_runtime()
    principal = await runtime.keys.authenticate(req.headers)
    body = parse_json_object(await req.read_body(settings.BODY_SIZE_LIMIT))
    file_id = body.get("input_file_id")
    if not isinstance(file_id, str) or not file_id:
        raise invalid("'input_file_id' is required.", param="input_file_id", code="missing_required")
    if not isinstance(body.get("endpoint"), str) or not body["endpoint"]:
        raise invalid("'endpoint' is required.", param="endpoint", code="missing_required")
    owned = await sync_to_async(files_store.find_file, thread_sensitive=True)(principal.tenant_id, file_id)
    if owned is None:  # only the caller's own uploads: another tenant's file is as unknown as a made-up id
        raise GatewayError(404, NOT_FOUND, f"No file with id '{file_id[:64]}' was found.", param="input_file_id",
                           code="file_not_found")
    target = await provider_target(runtime, principal, owned.provider)
    # A spent budget refuses a new batch (429 budget_exceeded); its cost is known only when it finishes, so
    # nothing is held for it.
    held = await reserve(runtime, principal, req.request_id, target, "", 0, 0, False)
    if held is not None:
        release(runtime, held)
    body.pop("provider", None)
    response = await send_to_provider(req, runtime, principal, target, "POST", "/batches", body=orjson.dumps(body))
    listing = created_object(target, response, BATCH_ID, "batch")
    await sync_to_async(batches_store.do_record_batch, thread_sensitive=True)(
        principal.tenant_id, principal.key_id, target.name, listing)
    await req.respond(200, response.content)


async def list_batches(req: Request) -> None:
    principal = await get_runtime().keys.authenticate(req.headers)
    query = _query(req)
    limit = page_limit(query, 20, MAX_PAGE)

    def page() -> bytes:
        rows, more = batches_store.list_batches(principal.tenant_id, limit, query.get("after"))
        data = [row.listing for row in rows]
        return orjson.dumps({"object": "list", "data": data, "first_id": data[0]["id"] if data else None,
                             "last_id": data[-1]["id"] if data else None, "has_more": more})

    await req.respond(200, await sync_to_async(page, thread_sensitive=True)())


async def _refresh(req: Request, batch_id: str, method: str, suffix: str) -> None:
    """Ask the provider about one of the caller's batches (or cancel it); the row keeps its latest state."""
    runtime = get_runtime()
    principal = await runtime.keys.authenticate(req.headers)
    if not BATCH_ID.fullmatch(batch_id):
        raise _not_found(batch_id)
    row = await sync_to_async(batches_store.find_batch, thread_sensitive=True)(principal.tenant_id, batch_id)
    if row is None:
        raise _not_found(batch_id)
    target = await provider_target(runtime, principal, row.provider)
    response = await send_to_provider(req, runtime, principal, target, method, f"/batches/{row.batch_id}{suffix}")
    await sync_to_async(batches_store.do_update_batch, thread_sensitive=True)(row, answer_object(target, response))
    await req.respond(200, response.content)


def routes(rest: str) -> dict | None:
    """The methods for a path under /v1/batches/: `{id}` or `{id}/cancel`."""
    parts = rest.split("/")
    if len(parts) == 1 and parts[0]:
        batch_id = parts[0]
        return {"GET": lambda req: _refresh(req, batch_id, "GET", "")}
    if len(parts) == 2 and parts[0] and parts[1] == "cancel":
        batch_id = parts[0]
        return {"POST": lambda req: _refresh(req, batch_id, "POST", "/cancel")}
    return None
