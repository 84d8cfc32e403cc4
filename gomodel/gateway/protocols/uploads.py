"""OpenAI-format upload endpoints as plug-ins of the one pipeline: `POST /v1/audio/transcriptions`,
`/v1/audio/translations` and `/v1/images/edits`, whose bodies are multipart/form-data (an audio file, an
image). The gateway reads the form as it arrives (multipart_form.py: the upload kept once, never copied
per part), routes by its `model` field, and forwards the client's body with that field's value replaced by
the upstream's model name (and the `provider` hint removed). Governed like every call: the `prompt` field,
when there is one, and the default output are what a budget and TPM reserve for. Billed from the answer's
`usage` where it reports tokens (gpt-4o-transcribe, gpt-image-1); otherwise (whisper's `seconds`, a text or
srt answer) one usage event with `usage_source=none`. Units are recorded besides: the audio's seconds (whisper's
`usage.seconds`, or a verbose answer's `duration`; a text or srt answer says none, and is then unpriced) and the
images an edit made, priced per unit where a price exists (accounting/prices/units.py). A transcription with
`stream=true` relays the provider's `transcript.text.*` events (passthrough's RawEvents), like any stream."""

from typing import Any, Self

import orjson
from django.conf import settings

from providers.adapter_protocol import ChatAdapter
from providers.base import Target, UpstreamError, UpstreamRequest
from providers.openai_compat.adapter import auth_headers

from ..errors import invalid
from ..http import Request
from ..multipart_form import Form, read_form
from ..upstream_client import UpstreamResponse
from ..usage_record import UsageRecord
from .base import BaseExchange
from .media import answered_images, requested_images
from .passthrough import RawEvents, UsageSniffer, usage_in


class UploadExchange(BaseExchange):
    """One multipart endpoint: `upstream_path` under the provider's base URL; `file_fields` name where its file goes."""

    upstream_path = ""
    file_fields: tuple[str, ...] = ("file",)  # the form's file goes in one of these
    what = ""
    streams = False  # the provider can stream this answer (`stream=true` in the form): transcriptions
    bills_seconds = False  # the answer says the audio's length (transcriptions, translations)
    __slots__ = ("form", "_bodies", "_targets")

    def __init__(self, req: Request, body: dict[str, Any], form: Form) -> None:
        super().__init__(req, body)
        self.stream = body.get("stream") in ("true", "True")  # a form field is text
        self.form = form
        self._bodies: dict[str, bytes] = {}  # the upstream body per model name (failover may change it)
        self._targets = 0

    @classmethod
    def validate(cls, body: dict[str, Any]) -> None:
        model = body.get("model")
        if not isinstance(model, str) or not model.strip() or len(model) > 256:
            raise invalid("The form field 'model' is required: the gateway routes by it.", param="model",
                          code="missing_required")
        stream = body.get("stream")
        if stream not in (None, "false", "False") and not (cls.streams and stream in ("true", "True")):
            raise invalid(f"{cls.what} answers are not streamed through the gateway.", param="stream",
                          code="unsupported_value")

    @classmethod
    async def receive(cls, req: Request) -> Self:
        form = await read_form(req, settings.BODY_SIZE_LIMIT)
        if all(form.file(name) is None for name in cls.file_fields):
            raise invalid(f"The form needs a file in '{cls.file_fields[0]}'.", param=cls.file_fields[0],
                          code="missing_required")
        # The text fields the pipeline reads (the file is not among them).
        body = {name: form.field(name) for name in ("model", "provider", "prompt", "stream", "n")
                if form.field(name) is not None}
        cls.validate(body)
        return cls(req, body, form)

    def messages(self) -> list[dict[str, Any]]:
        prompt = self.body.get("prompt")
        return [{"role": "user", "content": prompt}] if prompt else []

    def output_tokens(self) -> int:
        """What a budget and TPM hold until the answer: LIMITS_DEFAULT_MAX_TOKENS of output (the transcript's
        text, the image's tokens; no form field bounds it). The audio's own input tokens are not known before
        the answer: a budget may be overspent by one call's audio."""
        return settings.LIMITS_DEFAULT_MAX_TOKENS

    def candidates(self, chain: list[tuple[Target, str]]) -> list[tuple[Target, str]]:
        self._targets = len(chain)
        return chain

    def build(self, adapter: ChatAdapter, target: Target, model: str) -> UpstreamRequest:
        if target.wire != "openai_compat":
            raise UpstreamError(400, f"Provider '{target.name}' does not offer {self.what}.", param="model",
                                code="unsupported_model")
        headers = auth_headers(target)
        headers["content-type"] = self.form.content_type  # its boundary is the body's
        headers["accept"] = "*/*"
        body = self._bodies.get(model)
        if body is None:
            body = self._bodies[model] = self.form.rewritten({"model": model}, drop=("provider",))
            if self._targets == 1:  # no failover target needs the client's body: the upload is held once again
                self.form.body = b""
        return UpstreamRequest("POST", target.base_url.rstrip("/") + self.upstream_path, headers, body)

    def answer_headers(self, response: UpstreamResponse) -> list[tuple[bytes, bytes]]:
        content_type = response.headers.get("content-type") or "application/octet-stream"
        return [(b"content-type", content_type.encode("latin-1"))]

    def read(self, adapter: ChatAdapter, record: UsageRecord, content: bytes) -> tuple[bytes, None]:
        record.estimate_missing = False  # no token usage in the answer: billed as none, never guessed
        if content[:1] == b"{":
            data = orjson.loads(content)
            if isinstance(data, dict):
                usage = data.get("usage")
                if not isinstance(usage, dict) or usage.get("type") != "duration":  # seconds: not tokens
                    record.usage = usage_in("openai_compat", data, None)
                self.count_units(record, data)
        return content, None

    def count_units(self, record: UsageRecord, answer: dict[str, Any]) -> None:
        """Record the units this call is billed for besides tokens (a JSON answer's)."""
        if self.bills_seconds:
            usage = answer.get("usage")
            seconds = usage.get("seconds") if isinstance(usage, dict) and usage.get("type") == "duration" \
                else answer.get("duration")
            if isinstance(seconds, (int, float)) and not isinstance(seconds, bool) and 0 < seconds < 1e9:
                record.audio_seconds = float(seconds)

    def writer(self, adapter: ChatAdapter, record: UsageRecord) -> RawEvents:
        """The provider's events as they came (a transcription's `transcript.text.delta` / `.done`); billed
        from the usage of its `done` event, or, cut or hung up before it, on an estimate of the text relayed."""
        if not self.streams:
            raise AssertionError(f"{self.what} answers are not streamed")
        record.estimate_missing = False
        return RawEvents(TranscriptSniffer(record.target.wire), record)


class TranscriptSniffer(UsageSniffer):
    """A transcription stream's usage and text (UsageSniffer's), complete only at its `transcript.text.done`."""

    __slots__ = ()

    def __init__(self, wire: str) -> None:
        super().__init__(wire)
        self.complete = False

    def feed(self, record: UsageRecord, data: bytes) -> None:
        super().feed(record, data)
        if b"transcript.text.done" in data:  # a cheap look first: most events are deltas
            event = orjson.loads(data)
            if isinstance(event, dict) and event.get("type") == "transcript.text.done":
                self.complete = True


class TranscriptionsExchange(UploadExchange):
    endpoint = "/v1/audio/transcriptions"
    upstream_path = "/audio/transcriptions"
    what = "transcription"
    streams = True
    bills_seconds = True
    __slots__ = ()


class TranslationsExchange(UploadExchange):
    endpoint = "/v1/audio/translations"
    upstream_path = "/audio/translations"
    what = "translation"
    bills_seconds = True
    __slots__ = ()


class ImageEditsExchange(UploadExchange):
    endpoint = "/v1/images/edits"
    upstream_path = "/images/edits"
    file_fields = ("image", "image[]")  # the openai SDK names a list of images `image[]`
    what = "image editing"
    __slots__ = ()

    def units(self) -> tuple[int, int]:
        return requested_images(self.body.get("n")), 0

    def count_units(self, record: UsageRecord, answer: dict[str, Any]) -> None:
        record.images = answered_images(answer, self.body.get("n"))

    @classmethod
    def validate(cls, body: dict[str, Any]) -> None:
        super().validate(body)
        if not body.get("prompt"):
            raise invalid("The form field 'prompt' is required.", param="prompt", code="missing_required")
