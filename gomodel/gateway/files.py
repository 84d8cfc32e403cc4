"""/v1/files proxied to an OpenAI-format provider, with the gateway keeping which tenant owns which provider
file id (accounting.models.ProviderFile). A file belongs to the tenant that uploaded it: retrieve, content and
delete of any other id are a 404, exactly like an id that never existed, and the list shows the tenant's own
files only (read from the gateway's rows, never the provider's list, which holds every tenant's files).

Which provider: the upload's `provider` form field (or `?provider=`), else FILES_PROVIDER; later calls go
where the file lives. The key must be allowed that provider (`provider/*` in its allow-list, as for
passthrough); the request and concurrency limits apply. Files cost nothing here: no usage event."""

import asyncio
import logging
import re
from typing import cast

import orjson
from asgiref.sync import sync_to_async
from django.conf import settings

from accounting.provider_files import services as files_store
from providers.base import Target
from providers.openai_compat.adapter import auth_headers

from .auth import Principal
from .errors import INVALID_REQUEST, NOT_FOUND, GatewayError, invalid
from .http import Request
from .limits import allowed_chain
from .pipeline.run import watch_disconnect
from .runtime import get_runtime
from .upstream import transport_error, unreadable, upstream_error
from .upstream_client import UpstreamResponse
from .upstream_errors import HTTPError, ResponseTooLarge
from .usage_views import _query

FILE_ID = re.compile(r"[A-Za-z0-9_.-]{1,255}")  # anything else names no file
MAX_PAGE = 10_000  # OpenAI's own cap for a files page

log = logging.getLogger(__name__)


def _not_found(file_id: str) -> GatewayError:
    return GatewayError(404, NOT_FOUND, f"No file with id '{file_id[:64]}' was found.", param="file_id",
                        code="file_not_found")


async def provider_target(runtime, principal: Principal, provider: str) -> Target:
    await runtime.registry.ensure_loaded()
    target = runtime.registry.targets.get(provider)
    if target is None:
        raise GatewayError(404, NOT_FOUND, f"Provider '{provider[:64]}' is not configured.", param="provider",
                           code="provider_not_found")
    if target.wire != "openai_compat":
        raise GatewayError(400, INVALID_REQUEST, f"Provider '{provider}' does not offer files.", param="provider",
                           code="unsupported_provider")
    allowed_chain(principal, "", provider, [(target, "")])  # 403 unless the key may use this provider
    return target


async def send_to_provider(req: Request, runtime, principal: Principal, target: Target, method: str, path: str,
                headers: dict[str, str] | None = None, body: bytes | None = None):
    """One upstream call under the key's request and concurrency limits; a non-2xx is the scrubbed error."""
    admission = await runtime.limits.admit(req, principal, 0)
    try:
        upstream_headers = {**auth_headers(target), "accept": "*/*", **(headers or {})}
        if body is None:
            upstream_headers.pop("content-type", None)
        try:
            response = await runtime.http.request(method, _url(target, path), headers=upstream_headers, content=body)
        except HTTPError as exc:
            raise transport_error(target, exc) from None
        if not 200 <= response.status_code < 300:
            raise upstream_error(target, response.status_code, response.content, response.headers)
        return response
    finally:
        if admission is not None:
            admission.finish()


def _url(target: Target, path: str) -> str:
    return target.base_url.rstrip("/") + path


async def open_from_provider(runtime, target: Target, path: str) -> UpstreamResponse:
    """A GET whose 2xx answer comes back unread (the upstream client's stream mode, as a streamed call's), for
    a body relayed as it arrives; a non-2xx is the scrubbed error, a declared length over the cap a 502."""
    request = runtime.http.build_request("GET", _url(target, path), headers={**auth_headers(target), "accept": "*/*"})
    try:
        response = await runtime.http.send(request, stream=True)
    except HTTPError as exc:
        raise transport_error(target, exc) from None
    try:
        if not 200 <= response.status_code < 300:
            raise upstream_error(target, response.status_code, await response.aread(), response.headers)
        declared = response.headers.get("content-length") or ""
        if declared.isdigit() and int(declared) > settings.UPSTREAM_MAX_BODY_BYTES:
            raise transport_error(target, ResponseTooLarge(f"the upstream's body of {declared} bytes is over "
                                                           "UPSTREAM_MAX_BODY_BYTES"))
    except HTTPError as exc:  # the error answer itself could not be read
        await response.aclose()
        raise transport_error(target, exc) from None
    except BaseException:
        await response.aclose()
        raise
    return response


class _HangUp:
    """watch_disconnect's note for a relay without a usage record."""

    __slots__ = ("status", "error_type")

    def __init__(self) -> None:
        self.status = 200
        self.error_type: str | None = None


def content_headers(response: UpstreamResponse) -> list[tuple[bytes, bytes]]:
    """The provider's content-type, and its length when the bytes relayed are the bytes it counted (the client
    decompresses a compressed answer: its length is not the relayed one)."""
    content_type = response.headers.get("content-type") or "application/octet-stream"
    headers = [(b"content-type", content_type.encode("latin-1"))]
    length = response.headers.get("content-length") or ""
    if length.isdigit() and (response.headers.get("content-encoding") or "identity").strip().lower() == "identity":
        headers.append((b"content-length", length.encode()))
    return headers


async def relay_body(req: Request, target: Target, response: UpstreamResponse) -> None:
    """The upstream's 2xx body to the client as it arrives, one piece at a time (each write waits for the
    client to take it: memory does not grow with the body). The client's hang-up closes the upstream; an
    upstream failure mid-way (a break, the deadline, over UPSTREAM_MAX_BODY_BYTES) leaves the answer
    unfinished, so the server cuts the connection and the client sees a cut body, never a complete one."""
    task = cast("asyncio.Task[None]", asyncio.current_task())  # a request runs in a task
    note = _HangUp()
    watcher = None
    try:
        await req.start(200, content_headers(response))
        watcher = asyncio.ensure_future(watch_disconnect(req, task, note))
        if await _pump(req, target, response):
            watcher.cancel()
            await req.finish()
    except asyncio.CancelledError:
        if note.error_type != "client_disconnected":
            raise
        task.uncancel()  # the watcher cancelled us: the client hung up
    finally:
        if watcher is not None:
            watcher.cancel()
        await response.aclose()


async def _pump(req: Request, target: Target, response: UpstreamResponse) -> bool:
    """Relay every piece; False when the upstream failed mid-way (logged: the client only sees the cut)."""
    cap, relayed = settings.UPSTREAM_MAX_BODY_BYTES, 0
    try:
        async for piece in response.aiter_bytes():
            relayed += len(piece)
            if relayed > cap:  # the stream mode does not apply the cap: applied here as bytes arrive
                raise ResponseTooLarge(f"the upstream's body is over UPSTREAM_MAX_BODY_BYTES ({cap})")
            await req.write(piece)
    except HTTPError as exc:
        log.warning("file content from provider %s cut after %d bytes (request %s): %s", target.name, relayed,
                    req.request_id, transport_error(target, exc).message)
        return False
    return True


def page_limit(query: dict, default: int, most: int) -> int:
    """A list's `limit` query parameter: 1 to `most` (OpenAI's own page caps), else a 400."""
    limit = query.get("limit", str(default))
    if not limit.isdigit() or not 1 <= int(limit) <= most:
        raise invalid(f"'limit' must be an integer from 1 to {most}.", param="limit", code="invalid_value")
    return int(limit)


def answer_object(target: Target, response) -> dict:
    try:
        data = orjson.loads(response.content)
    except orjson.JSONDecodeError as exc:
        raise unreadable(target, exc) from None
    if not isinstance(data, dict):
        raise unreadable(target, ValueError("not a JSON object"))
    return data


def created_object(target: Target, response, id_pattern: re.Pattern, what: str) -> dict:
    """The object a provider answered a create with (a file, a batch), refused (502) unless its id is one the
    gateway can record and route by."""
    listing = answer_object(target, response)
    if not isinstance(listing.get("id"), str) or not id_pattern.fullmatch(listing["id"]):
        raise unreadable(target, ValueError(f"the {what} object has no usable id"))
    return listing


async def upload_file(req: Request) -> None:
    from .multipart_form import read_form  # the multipart parser only for uploads

    runtime = get_runtime()
    principal = await runtime.keys.authenticate(req.headers)
    form = await read_form(req, settings.BODY_SIZE_LIMIT)
    if form.file("file") is None:
        raise invalid("The form needs a file in 'file'.", param="file", code="missing_required")
    if not form.field("purpose"):
        raise invalid("The form field 'purpose' is required.", param="purpose", code="missing_required")
    provider = form.field("provider") or _query(req).get("provider") or settings.FILES_PROVIDER
    target = await provider_target(runtime, principal, provider)
    response = await send_to_provider(req, runtime, principal, target, "POST", "/files",
                           {"content-type": form.content_type}, form.rewritten({}, drop=("provider",)))
    listing = created_object(target, response, FILE_ID, "file")
    await sync_to_async(files_store.do_record_file, thread_sensitive=True)(
        principal.tenant_id, principal.key_id, target.name, listing)
    await req.respond(200, response.content)


async def list_files(req: Request) -> None:
    principal = await get_runtime().keys.authenticate(req.headers)
    query = _query(req)
    limit = page_limit(query, 10_000, MAX_PAGE)
    order = query.get("order", "desc")
    if order not in ("asc", "desc"):
        raise invalid("'order' must be 'asc' or 'desc'.", param="order", code="invalid_value")

    def page() -> bytes:  # the rows and their JSON in the ORM's thread: a page grows with `limit`
        rows, more = files_store.list_files(principal.tenant_id, limit, order, query.get("after"),
                                            query.get("purpose"))
        data = [row.listing for row in rows]
        return orjson.dumps({"object": "list", "data": data, "first_id": data[0]["id"] if data else None,
                             "last_id": data[-1]["id"] if data else None, "has_more": more})

    await req.respond(200, await sync_to_async(page, thread_sensitive=True)())


async def _owned(req: Request, file_id: str):
    """The caller, the file's row (a 404 unless the caller's tenant uploaded it) and where it lives."""
    runtime = get_runtime()
    principal = await runtime.keys.authenticate(req.headers)
    if not FILE_ID.fullmatch(file_id):
        raise _not_found(file_id)
    row = await sync_to_async(files_store.find_file, thread_sensitive=True)(principal.tenant_id, file_id)
    if row is None:
        raise _not_found(file_id)
    return runtime, principal, row, await provider_target(runtime, principal, row.provider)


async def retrieve_file(req: Request, file_id: str) -> None:
    runtime, principal, row, target = await _owned(req, file_id)
    response = await send_to_provider(req, runtime, principal, target, "GET", f"/files/{row.file_id}")
    await req.respond(200, response.content)


async def file_content(req: Request, file_id: str) -> None:
    """Relayed as it arrives (relay_body), under the key's request and concurrency limits until its last byte."""
    runtime, principal, row, target = await _owned(req, file_id)
    admission = await runtime.limits.admit(req, principal, 0)
    try:
        response = await open_from_provider(runtime, target, f"/files/{row.file_id}/content")
        await relay_body(req, target, response)
    finally:
        if admission is not None:
            admission.finish()


async def delete_file(req: Request, file_id: str) -> None:
    runtime, principal, row, target = await _owned(req, file_id)
    try:
        response = await send_to_provider(req, runtime, principal, target, "DELETE", f"/files/{row.file_id}")
    except GatewayError as error:
        if error.status == 404:  # gone at the provider already: the row goes too
            await sync_to_async(files_store.do_forget_file, thread_sensitive=True)(principal.tenant_id, row.file_id)
        raise
    await sync_to_async(files_store.do_forget_file, thread_sensitive=True)(principal.tenant_id, row.file_id)
    await req.respond(200, response.content)


def routes(rest: str) -> dict | None:
    """The methods for a path under /v1/files/: `{id}` or `{id}/content`."""
    parts = rest.split("/")
    if len(parts) == 1 and parts[0]:
        file_id = parts[0]
        return {"GET": lambda req: retrieve_file(req, file_id), "DELETE": lambda req: delete_file(req, file_id)}
    if len(parts) == 2 and parts[0] and parts[1] == "content":
        file_id = parts[0]
        return {"GET": lambda req: file_content(req, file_id)}
    return None
