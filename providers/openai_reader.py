"""Reading an OpenAI chat request, for the adapters that translate it to another wire format
(anthropic/request.py, gemini/request.py): content parts, data: URLs and tool-call arguments.

These only read; what a provider cannot take, and the error it answers, stays with its adapter.
"""

import re
from dataclasses import dataclass
from typing import Any

import orjson

# Part types whose payload is text (`input_text`/`output_text`: the Responses API's names).
TEXT_TYPES = ("text", "input_text", "output_text")
_DATA_URL = re.compile(r"data:([^;,]+)?((?:;[^;,]*)*),(.*)", re.DOTALL)


@dataclass(frozen=True)
class Part:
    """One content part: `kind` is "text" for a bare string or a text-typed part, else the part's type
    ("image_url", "input_audio", "file", "refusal", …; None if it has none)."""

    kind: str | None
    raw: dict[str, Any] | str
    text: str | None = None  # text parts and refusals: the text (None if the part has none)

    @property
    def cache_control(self) -> dict[str, Any] | None:
        value = self.raw.get("cache_control") if isinstance(self.raw, dict) else None
        return value if isinstance(value, dict) else None


def read_part(part: object) -> Part | None:
    """One element of a message's content array; None when it is neither a string nor an object."""
    if isinstance(part, str):
        return Part("text", part, part)
    if not isinstance(part, dict):
        return None
    kind = part.get("type")
    if kind in TEXT_TYPES:
        text = part.get("text")
        return Part("text", part, text if isinstance(text, str) else None)
    if kind == "refusal":
        text = part.get("refusal")
        return Part("refusal", part, text if isinstance(text, str) else None)
    return Part(kind if isinstance(kind, str) else None, part)


def image_url(part: Part) -> Any:
    """An image_url part's URL (`{"image_url": {"url": …}}`, or the bare string some clients send)."""
    image = part.raw.get("image_url") if isinstance(part.raw, dict) else None
    return image.get("url") if isinstance(image, dict) else image


def input_audio(part: Part) -> dict[str, Any]:
    audio = part.raw.get("input_audio") if isinstance(part.raw, dict) else None
    return audio if isinstance(audio, dict) else {}


def file_data(part: Part) -> Any:
    """A file part's inline `file_data` (a data: URL), if any; uploaded file ids have none."""
    file = part.raw.get("file") if isinstance(part.raw, dict) else None
    return file.get("file_data") if isinstance(file, dict) else None


def data_url(url: str) -> tuple[str | None, str] | None:
    """`data:<media type>[;…];base64,<data>` -> (media type or None, data); None when it is not a
    base64 data: URL."""
    match = _DATA_URL.match(url)
    if match is None or "base64" not in (match.group(2) or "").split(";"):
        return None
    return match.group(1), match.group(3)


def tool_call_arguments(arguments: Any) -> dict[str, Any] | None:
    """A tool call's `function.arguments` (a JSON string, or an object some clients send) as an object;
    empty or blank is {}; None when it is not a JSON object."""
    if arguments is None or (isinstance(arguments, str) and not arguments.strip()):
        return {}
    if isinstance(arguments, dict):
        return arguments
    try:
        parsed = orjson.loads(arguments)
    except (orjson.JSONDecodeError, TypeError):
        return None
    return parsed if isinstance(parsed, dict) else None
