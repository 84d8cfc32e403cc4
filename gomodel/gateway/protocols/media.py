"""OpenAI-format media endpoints as plug-ins of the one pipeline: `POST /v1/images/generations`,
`POST /v1/audio/speech` and `POST /v1/moderations`, relayed to an OpenAI-format provider's own endpoint
(the body as sent, the model resolved as for chat). Governed like every call; billed from the answer's
`usage` where it has one (gpt-image's tokens), else one usage event with `usage_source=none` (speech,
moderations: nothing in the answer says what it cost). Images and speech also record their units — the images
the answer holds, the speech input's characters — priced per unit where a price exists (accounting/prices/units.py).
The answer goes back with its own content type (speech is audio bytes)."""

from typing import Any, NoReturn

import orjson

from providers.adapter_protocol import ChatAdapter
from providers.base import Target, UpstreamError, UpstreamRequest
from providers.openai_compat.adapter import auth_headers

from ..errors import invalid
from ..upstream_client import UpstreamResponse
from ..usage_record import UsageRecord
from .base import BaseExchange
from .passthrough import usage_in


class MediaExchange(BaseExchange):
    """One OpenAI-format JSON endpoint: `upstream_path` under the provider's base URL; `text_field` holds
    the input a budget and TPM reserve for (characters / 4); `what` names it in errors."""

    upstream_path = ""
    text_field = "input"
    what = ""
    generates = False  # reserves LIMITS_DEFAULT_MAX_TOKENS of output (images); else nothing is generated
    __slots__ = ()

    @classmethod
    def validate(cls, body: dict[str, Any]) -> None:
        model = body.get("model")
        if not isinstance(model, str) or not model.strip() or len(model) > 256:
            raise invalid("'model' is required: the gateway routes by it.", param="model", code="missing_required")
        text = body.get(cls.text_field)
        if not (isinstance(text, str) and text) and not (isinstance(text, list) and text):
            raise invalid(f"'{cls.text_field}' is required.", param=cls.text_field, code="missing_required")
        if "stream" in body and body["stream"] not in (False, None):
            raise invalid(f"{cls.what} answers are not streamed through the gateway.", param="stream",
                          code="unsupported_value")

    def messages(self) -> list[dict[str, Any]]:
        value = self.body.get(self.text_field)
        texts = value if isinstance(value, list) else [value]
        return [{"role": "user", "content": text if isinstance(text, str) else orjson.dumps(text).decode()}
                for text in texts]

    def output_tokens(self) -> int:
        return super().output_tokens() if self.generates else 0

    def build(self, adapter: ChatAdapter, target: Target, model: str) -> UpstreamRequest:
        if target.wire != "openai_compat":
            raise UpstreamError(400, f"Provider '{target.name}' does not offer {self.what}.", param="model",
                                code="unsupported_model")
        headers = auth_headers(target)
        headers["accept"] = "*/*"
        body = {**self.body, "model": model}
        body.pop("provider", None)
        return UpstreamRequest("POST", target.base_url.rstrip("/") + self.upstream_path, headers,
                               orjson.dumps(body))

    def answer_headers(self, response: UpstreamResponse) -> list[tuple[bytes, bytes]]:
        content_type = response.headers.get("content-type") or "application/octet-stream"
        return [(b"content-type", content_type.encode("latin-1"))]

    def read(self, adapter: ChatAdapter, record: UsageRecord, content: bytes) -> tuple[bytes, None]:
        record.estimate_missing = False  # no usage in the answer: billed as none, never guessed
        if content[:1] == b"{":
            data = orjson.loads(content)
            if isinstance(data, dict):
                record.usage = usage_in("openai_compat", data, None)
                self.count_units(record, data)
        else:
            self.count_units(record, None)
        return content, None

    def count_units(self, record: UsageRecord, answer: dict[str, Any] | None) -> None:
        """Record the units this call is billed for besides tokens (none here; images and speech have some)."""

    def writer(self, adapter: ChatAdapter, record: UsageRecord) -> NoReturn:
        raise AssertionError(f"{self.what} answers are not streamed")


class ImagesExchange(MediaExchange):
    endpoint = "/v1/images/generations"
    upstream_path = "/images/generations"
    text_field = "prompt"
    what = "image generation"
    generates = True
    user_path = ("user",)
    __slots__ = ()

    def units(self) -> tuple[int, int]:
        return requested_images(self.body.get("n")), 0

    def count_units(self, record: UsageRecord, answer: dict[str, Any] | None) -> None:
        record.images = answered_images(answer, self.body.get("n"))


class SpeechExchange(MediaExchange):
    endpoint = "/v1/audio/speech"
    upstream_path = "/audio/speech"
    what = "speech"
    __slots__ = ()

    def units(self) -> tuple[int, int]:
        return 0, self.characters()

    def characters(self) -> int:
        text = self.body.get("input")
        return len(text) if isinstance(text, str) else 0

    def count_units(self, record: UsageRecord, answer: dict[str, Any] | None) -> None:
        record.characters = self.characters()  # the audio came back: its input's length is what is billed


def requested_images(n: Any) -> int:
    """The images a call asks for (`n`, 1 by default; a form field is text)."""
    if isinstance(n, str) and n.strip().isdigit():
        n = int(n)
    return n if isinstance(n, int) and not isinstance(n, bool) and 0 < n <= 128 else 1


def answered_images(answer: dict[str, Any] | None, n: Any) -> int:
    """The images an answer holds (its `data` list), else the number asked for."""
    data = answer.get("data") if answer is not None else None
    return len(data) if isinstance(data, list) else requested_images(n)


class ModerationsExchange(MediaExchange):
    endpoint = "/v1/moderations"
    upstream_path = "/moderations"
    what = "moderations"
    __slots__ = ()
