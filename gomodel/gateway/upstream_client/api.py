"""What the gateway calls on an upstream client (`UpstreamClient`, `UpstreamResponse`). Failures are always
upstream_errors' exceptions (httpx's names and hierarchy). The pieces both clients share live with the
gateway's own: the prepared request and the httpx-like verbs in loop_client.py, the answer headers and the
bounded decompression in answer.py."""

from collections.abc import AsyncIterator, Mapping
from typing import Any, Protocol, runtime_checkable


class UpstreamResponse(Protocol):
    status_code: int
    headers: Mapping[str, str]  # case-insensitive
    content: bytes  # the body, once read (always, unless sent with stream=True)

    async def aread(self) -> bytes: ...

    def aiter_bytes(self) -> AsyncIterator[bytes]: ...

    async def aclose(self) -> None: ...


@runtime_checkable
class UpstreamClient(Protocol):
    """What the gateway calls on its upstream client; failures raise HTTPError
    subclasses (which one decides 502 vs 504 and whether to retry)."""

    def build_request(self, method: str, url: str, *, headers: Mapping[str, str] | None = None,
                      content: bytes | None = None) -> Any: ...

    async def send(self, request: Any, *, stream: bool = False) -> UpstreamResponse: ...

    async def request(self, method: str, url: str, *, headers: Mapping[str, str] | None = None,
                      content: bytes | None = None, timeout: float | None = None) -> UpstreamResponse: ...

    async def aclose(self) -> None: ...

