"""POST /v1/embeddings: no stream, nothing generated (no output reserved), the input as the prompt."""

from typing import Any, NoReturn, cast

import orjson

from accounting.usage.estimate import approximate_text_tokens
from providers.adapter_protocol import ChatAdapter, EmbeddingsAdapter
from providers.adapters import embeddings_adapter
from providers.base import Target, UpstreamError, UpstreamRequest

from ..usage_record import UsageRecord
from ..validation import validate_embeddings
from .base import BaseExchange


class EmbeddingsExchange(BaseExchange):
    endpoint = "/v1/embeddings"
    cacheable = True
    user_path = ("user",)
    __slots__ = ()
    validate = staticmethod(validate_embeddings)

    def messages(self) -> list[dict[str, Any]]:
        """The input as messages, so that a missing upstream usage can be estimated like a prompt."""
        value = self.body["input"]
        items = value if isinstance(value, list) and value and not isinstance(value[0], int) else [value]
        return [{"role": "user", "content": item if isinstance(item, str) else " " * (4 * len(item))}
                for item in items]

    def prompt_tokens(self) -> int:
        """chars/4 of each input, without the per-message overhead of a chat prompt (inputs are not messages)."""
        if self._prompt_tokens is None:
            self._prompt_tokens = sum(approximate_text_tokens(m["content"]) for m in self.prompt())
        return self._prompt_tokens

    def output_tokens(self) -> int:
        return 0

    def build(self, adapter: ChatAdapter, target: Target, model: str) -> UpstreamRequest:
        embeddings = embeddings_adapter(adapter)
        if embeddings is None:
            raise UpstreamError(400, f"Provider '{target.name}' does not offer embeddings.", param="model",
                                code="embeddings_not_supported")
        return embeddings.build_embeddings_request(self.body, target, model)

    def read(self, adapter: ChatAdapter, record: UsageRecord, content: bytes) -> tuple[bytes, None]:
        # the adapter that built the request, which build() checked speaks embeddings
        data, usage = cast(EmbeddingsAdapter, adapter).parse_embeddings_response(
            content, record.model, self.body.get("encoding_format"))
        data["provider"] = record.target.name
        record.usage = usage
        return orjson.dumps(data), None

    def writer(self, adapter: ChatAdapter, record: UsageRecord) -> NoReturn:
        raise AssertionError("embeddings never stream")
