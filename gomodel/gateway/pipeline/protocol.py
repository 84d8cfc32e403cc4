"""What a protocol (chat, embeddings, Messages, Responses, …) plugs into the one pipeline: only what differs
between them. (Its error envelope goes with its route: app.py's ANTHROPIC_ROUTES, so that errors before the
body is read — auth, 405 — use it too.) Admission, failover, the stream relay, the budget guard, status
mapping, scrubbing and the usage event are the pipeline's (call.py, relay.py, run.py), written once."""

from collections.abc import Callable
from typing import Any, ClassVar, Protocol, Self

from providers.adapter_protocol import ChatAdapter
from providers.base import Target, UpstreamRequest, Usage

from ..auth import Principal
from ..http import Request
from ..upstream_client import UpstreamResponse
from ..usage_record import UsageRecord


class StreamWriter(Protocol):
    """One stream's translation into the client's protocol. Every method returns the bytes to send."""

    @property
    def usage(self) -> Usage | None:
        """What the upstream reported so far (None until it did)."""

    @property
    def complete(self) -> bool:
        """The upstream's stream reached its end."""

    def start(self) -> bytes:
        """Sent before the first upstream byte (a protocol's opening events; b"" for most)."""

    def feed(self, event: str | None, data: bytes) -> bytes:
        """One upstream SSE event in; raises providers.base.StreamError for an upstream error event
        (its message is scrubbed by the relay, never shown as it came)."""

    def finish(self) -> bytes:
        """The upstream's stream ended: what its end flushes, and the closing events when it was complete
        (`complete` is read after this)."""

    def fail(self, message: str, code: str, kind: str) -> bytes:
        """The terminal error event for `message` (already scrubbed); `kind` is the gateway's error type."""

    def answer(self) -> dict[str, Any] | None:
        """The whole answer the client received, for a protocol that keeps it (Responses' store)."""


class Exchange(Protocol):
    """One call in one protocol, made from its validated body."""

    endpoint: str  # the usage event's endpoint (a class's; passthrough's is per provider, set by receive)
    billed: ClassVar[bool]  # False: the call never makes a usage event (count_tokens)
    cacheable: ClassVar[bool]  # True: the response cache may store and replay its answers (JSON or SSE)
    body: dict[str, Any]
    model: str  # as requested
    provider_hint: str | None
    stream: bool

    def __init__(self, req: Request, body: dict[str, Any]) -> None: ...

    # 400 for a body this protocol cannot take (before any routing): `validate = staticmethod(check)`, or a
    # classmethod (media.py's reads its class's field). Read-only here: a classmethod is no settable variable.
    @property
    def validate(self) -> Callable[[dict[str, Any]], None]: ...

    @classmethod
    async def receive(cls, req: Request) -> Self:
        """The call from its request: its body read and validated (400 otherwise), as the protocol takes it."""

    async def prepare(self, principal: Principal) -> None:
        """Reads the call needs before routing (Responses' stored context); most do nothing."""

    # Where the body carries labels (an object of strings) and the end user (a path); "" / (): nowhere.
    # Read-only here, so that a plug-in's class variable of a narrower type satisfies it.
    @property
    def labels_field(self) -> str: ...

    @property
    def user_path(self) -> tuple[str, ...]: ...

    def body_attribution(self) -> tuple[Any, Any]:
        """The body's labels object and end user as sent (None where absent): attribution.py checks them."""

    def prompt(self) -> list[dict[str, Any]]:
        """The prompt as chat-like messages (for estimates when usage is not reported); computed once."""

    def prompt_tokens(self) -> int:
        """The prompt's estimate in tokens (chars/4: no tokenizer on the event loop); computed once."""

    def output_tokens(self) -> int:
        """The most this call may generate (max_tokens or LIMITS_DEFAULT_MAX_TOKENS; 0 for embeddings):
        reserved against TPM and priced into the budget reservation until the call ends."""

    def units(self) -> tuple[int, int]:
        """(images, characters) the call will be billed for whatever it answers (n images, a speech input's
        length): priced into the budget reservation like the prompt; (0, 0) for a call billed by tokens."""

    def candidates(self, chain: list[tuple[Target, str]]) -> list[tuple[Target, str]]:
        """The targets this protocol can use among those routing found (count_tokens: native ones)."""

    def local_answer(self, target: Target, model: str) -> Any:
        """An answer made without an upstream (count_tokens estimated), awaited; None: go upstream."""

    def build(self, adapter: ChatAdapter, target: Target, model: str) -> UpstreamRequest:
        """The upstream request for this target (adapters translate; raise UpstreamError if impossible)."""

    def read(self, adapter: ChatAdapter, record: UsageRecord, content: bytes) -> tuple[bytes, dict[str, Any] | None]:
        """A complete upstream answer into the client's body (and the answer, for a protocol that keeps it);
        sets record.usage (and what it relayed when
        the upstream reported none). Raises UpstreamError for a 200 that is a refusal, ValueError,
        TypeError, KeyError or AttributeError for an unreadable one."""

    def writer(self, adapter: ChatAdapter, record: UsageRecord) -> StreamWriter:
        """The stream writer for this target's answer."""

    def answer_headers(self, response: UpstreamResponse) -> list[tuple[bytes, bytes]] | None:
        """The headers of a whole answer (None: JSON)."""

    def answered(self, answer: dict[str, Any] | None) -> None:
        """The call ended (answer: what the client got, None when it got no complete answer)."""
