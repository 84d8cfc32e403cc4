"""What most protocols share: the body's routing fields, lazy prompt estimates, no local answer."""

from typing import Any, ClassVar, Generic, Protocol, Self, TypeVar

from django.conf import settings

from accounting.usage.estimate import estimate_prompt_tokens
from providers.adapter_protocol import StreamParser
from providers.base import Target, Usage

from ..auth import Principal
from ..http import Request
from ..json_body import parse_json_object
from ..usage_record import UsageRecord


class UsageSource(Protocol):
    """What StreamWriterBase reads of the parser it wraps."""

    usage: Usage | None

    @property
    def complete(self) -> bool: ...


ParserT = TypeVar("ParserT", bound=UsageSource)


class BaseExchange:
    """Defaults for gomodel.gateway.pipeline.protocol.Exchange."""

    endpoint: str = ""  # a class variable but for passthrough's (per provider, in a slot)
    billed: ClassVar[bool] = True
    cacheable: ClassVar[bool] = False  # a protocol whose answers the response cache may replay says so
    validate: ClassVar["staticmethod[..., None]"]  # each protocol's (pipeline.protocol.Exchange)
    # Where the body carries attribution (gomodel/gateway/attribution.py): its object of string labels, and the
    # path to its end user's id. Empty: the body has none (only the x-gomodel-* headers count).
    labels_field: ClassVar[str] = ""
    user_path: ClassVar[tuple[str, ...]] = ()
    __slots__ = ("body", "model", "provider_hint", "stream", "_prompt", "_prompt_tokens", "req")

    def __init__(self, req: Request, body: dict[str, Any]) -> None:
        self.req = req
        self.body = body
        self.model = body["model"]
        self.provider_hint = body.get("provider")
        self.stream = body.get("stream") is True
        self._prompt: list[dict[str, Any]] | None = None
        self._prompt_tokens: int | None = None

    @classmethod
    async def receive(cls, req: Request) -> Self:
        """The call from its request: a JSON object, validated (400 otherwise)."""
        body = parse_json_object(await req.read_body(settings.BODY_SIZE_LIMIT))
        cls.validate(body)
        return cls(req, body)

    async def prepare(self, principal: Principal) -> None:
        return None

    def body_attribution(self) -> tuple[Any, Any]:
        """The body's labels object and end user as sent (None where absent)."""
        body = self.body
        labels = body.get(self.labels_field) if self.labels_field else None
        user: Any = body if self.user_path else None
        for name in self.user_path:
            user = user.get(name) if isinstance(user, dict) else None
        return labels, user

    def answer_headers(self, response: Any) -> list[tuple[bytes, bytes]] | None:
        """The headers of a whole answer (None: JSON)."""
        return None

    def messages(self) -> list[dict[str, Any]]:
        raise NotImplementedError

    def prompt(self) -> list[dict[str, Any]]:
        if self._prompt is None:
            self._prompt = self.messages()
        return self._prompt

    def prompt_tokens(self) -> int:
        if self._prompt_tokens is None:
            self._prompt_tokens = estimate_prompt_tokens(self.prompt(), "")  # chars/4: no tokenizer on the loop
        return self._prompt_tokens

    def output_tokens(self) -> int:
        limit = self.max_output()
        if not isinstance(limit, int) or isinstance(limit, bool) or limit < 0:
            limit = settings.LIMITS_DEFAULT_MAX_TOKENS
        return limit

    def units(self) -> tuple[int, int]:
        return 0, 0

    def max_output(self) -> Any:
        return self.body.get("max_completion_tokens") or self.body.get("max_tokens")

    def candidates(self, chain: list[Any]) -> list[Any]:
        return chain

    def local_answer(self, target: Target, model: str) -> Any:
        return None

    def answered(self, answer: dict[str, Any] | None) -> None:
        return None


class StreamWriterBase(Generic[ParserT]):
    """What every stream writer shares: the upstream's parser (its usage and whether it completed), nothing
    to send before the first upstream byte, no answer kept (pipeline.protocol.StreamWriter)."""

    __slots__ = ("parser", "record")

    def __init__(self, parser: ParserT, record: UsageRecord) -> None:
        self.parser = parser
        self.record = record

    @property
    def usage(self) -> Usage | None:
        return self.parser.usage

    @property
    def complete(self) -> bool:
        return self.parser.complete

    def start(self) -> bytes:
        return b""

    def answer(self) -> dict[str, Any] | None:
        return None


class ChunkTranslator(StreamWriterBase[StreamParser]):
    """A writer fed with chat-completion chunks (the adapters' one stream shape): each chunk is kept for
    the usage estimate and encoded in the client's protocol (`encode`); `closing` ends a complete stream."""

    __slots__ = ()

    def feed(self, event: str | None, data: bytes) -> bytes:
        return self._write(self.parser.feed(event, data))

    def finish(self) -> bytes:
        tail = self._write(self.parser.close())
        return tail + self.closing() if self.parser.complete else tail

    def _write(self, chunks: list[dict[str, Any]]) -> bytes:
        out: list[bytes] = []
        record = self.record
        for chunk in chunks:
            record.relay(chunk)
            out.append(self.encode(chunk))
        return b"".join(out)

    def encode(self, chunk: dict[str, Any]) -> bytes:
        raise NotImplementedError

    def closing(self) -> bytes:
        raise NotImplementedError
