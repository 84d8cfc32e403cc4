"""What most protocols share: the body's routing fields, lazy prompt estimates, no local answer."""

from django.conf import settings

from accounting.estimate import estimate_prompt_tokens


class BaseExchange:
    """Defaults for gomodel.gateway.pipeline.protocol.Exchange."""

    endpoint = ""
    billed = True
    cacheable = False  # a protocol whose answers the response cache may replay says so
    __slots__ = ("body", "model", "provider_hint", "stream", "_prompt", "_prompt_tokens", "req")

    def __init__(self, req, body: dict):
        self.req = req
        self.body = body
        self.model = body["model"]
        self.provider_hint = body.get("provider")
        self.stream = body.get("stream") is True
        self._prompt = None
        self._prompt_tokens = None

    async def prepare(self, principal) -> None:
        return None

    def messages(self) -> list[dict]:
        raise NotImplementedError

    def prompt(self) -> list[dict]:
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

    def max_output(self):
        return self.body.get("max_completion_tokens") or self.body.get("max_tokens")

    def candidates(self, chain: list) -> list:
        return chain

    def local_answer(self, target, model):
        return None

    def answered(self, answer) -> None:
        return None


class StreamWriterBase:
    """What every stream writer shares: the upstream's parser (its usage and whether it completed), nothing
    to send before the first upstream byte, no answer kept (pipeline.protocol.StreamWriter)."""

    __slots__ = ("parser", "record")

    def __init__(self, parser, record):
        self.parser = parser
        self.record = record

    @property
    def usage(self):
        return self.parser.usage

    @property
    def complete(self) -> bool:
        return self.parser.complete

    def start(self) -> bytes:
        return b""

    def answer(self):
        return None


class ChunkTranslator(StreamWriterBase):
    """A writer fed with chat-completion chunks (the adapters' one stream shape): each chunk is kept for
    the usage estimate and encoded in the client's protocol (`encode`); `closing` ends a complete stream."""

    __slots__ = ()

    def feed(self, event: str | None, data: bytes) -> bytes:
        return self._write(self.parser.feed(event, data))

    def finish(self) -> bytes:
        tail = self._write(self.parser.close())
        return tail + self.closing() if self.parser.complete else tail

    def _write(self, chunks: list[dict]) -> bytes:
        out = []
        record = self.record
        for chunk in chunks:
            record.relay(chunk)
            out.append(self.encode(chunk))
        return b"".join(out)

    def encode(self, chunk: dict) -> bytes:
        raise NotImplementedError

    def closing(self) -> bytes:
        raise NotImplementedError
