"""The contract every wire adapter package (providers/<wire>/) fulfils, declared once.

An adapter is a module of pure functions, no I/O: it turns an OpenAI chat request into the upstream's
request and the upstream's answers back into OpenAI's shapes. The gateway (gomodel/gateway/) does the
sending. `supports_embeddings` is the adapter's explicit say whether it also speaks embeddings; when
True, the module is an `EmbeddingsAdapter` too. tests/unit/test_adapter_protocol.py checks every
adapter of the catalogue against these, signatures included.
"""

from typing import Any, Protocol, runtime_checkable

from .base import Target, UpstreamRequest, Usage


class StreamParser(Protocol):
    """One streamed response: upstream SSE events in, chat.completion.chunk dicts out."""

    usage: Usage | None  # set once the upstream reported it

    def __init__(self, model: str = ""): ...

    @property
    def complete(self) -> bool:
        """The upstream said the stream is done (a stream that ends without it was cut)."""
        ...

    def feed(self, event: str | None, data: bytes) -> list[dict[str, Any]]: ...

    def close(self) -> list[dict[str, Any]]: ...


@runtime_checkable
class ChatAdapter(Protocol):
    supports_embeddings: bool
    StreamParser: type[StreamParser]

    def build_chat_request(self, body: dict[str, Any], target: Target, model: str, stream: bool) -> UpstreamRequest: ...

    def parse_chat_response(self, raw: bytes) -> tuple[dict[str, Any], Usage | None]: ...

    def build_models_request(self, target: Target) -> UpstreamRequest: ...

    def parse_models(self, raw: bytes) -> list[str]: ...


@runtime_checkable
class EmbeddingsAdapter(ChatAdapter, Protocol):
    def build_embeddings_request(self, body: dict[str, Any], target: Target, model: str) -> UpstreamRequest: ...

    def parse_embeddings_response(self, raw: bytes, model: str,
                                  encoding_format: str | None = None) -> tuple[dict[str, Any], Usage | None]: ...
