"""Reading a multipart/form-data /v1 body (an upload: audio to transcribe, an image to edit, a file) without
holding it twice: the body is parsed as it arrives, chunk by chunk (python-multipart's parser, whose cost per
chunk is bounded by the chunk), and kept once, as received, to be forwarded. Only the small text fields are
copied out (each capped at FIELD_MAX bytes); a file part's bytes are never copied, only counted.

The fields the gateway rewrites (`model`: the upstream's name; `provider`: a routing hint the provider must
not see) are located by byte offsets into the kept body, so the upstream body is the client's with one value
replaced (`Form.rewritten`)."""

from dataclasses import dataclass, field

from .errors import invalid
from .http import Request

FIELD_MAX = 64 * 1024  # a text field longer than this (a prompt) is a 400: none of OpenAI's is near it
MAX_PARTS = 64


def bad(message: str) -> Exception:
    return invalid(message, code="invalid_multipart")


@dataclass(slots=True)
class Part:
    name: str
    filename: str | None
    content_type: str | None
    start: int  # where the part's headers begin in the body
    value: bytearray = field(default_factory=bytearray)  # a text field's value (a file's is not copied)
    size: int = 0


@dataclass(slots=True)
class Form:
    body: bytes
    boundary: bytes
    content_type: str  # the client's header, boundary included: the upstream gets the same one
    parts: list[Part]

    def field(self, name: str) -> str | None:
        for part in self.parts:
            if part.name == name and part.filename is None:
                return part.value.decode("utf-8", "replace")
        return None

    def file(self, name: str) -> Part | None:
        return next((part for part in self.parts if part.name == name and part.filename is not None), None)

    def _value_span(self, part: Part) -> tuple[int, int]:
        """The value's bytes: after the part's headers, up to the next delimiter (CRLF--boundary)."""
        start = self.body.index(b"\r\n\r\n", part.start) + 4
        return start, self.body.index(b"\r\n--" + self.boundary, start)

    def rewritten(self, values: dict[str, str], drop: tuple[str, ...] = ()) -> bytes:
        """The body with these text fields' values replaced and these fields removed; one copy, in C."""
        edits: list[tuple[int, int, bytes]] = []
        for part in self.parts:
            if part.filename is not None:
                continue
            if part.name in drop:
                start, end = self._value_span(part)
                delimiter = self.body.rindex(b"--" + self.boundary, 0, part.start)
                edits.append((delimiter, end + 2, b""))  # the part and the CRLF before the next delimiter
            elif part.name in values:
                start, end = self._value_span(part)
                edits.append((start, end, values[part.name].encode()))
        if not edits:
            return self.body
        view = memoryview(self.body)
        pieces: list[bytes | memoryview] = []
        at = 0
        for start, end, text in sorted(edits):
            pieces += [view[at:start], text]
            at = end
        pieces.append(view[at:])
        return b"".join(pieces)


class _Reader:
    """python-multipart's callbacks, turned into Parts with absolute offsets into the body."""

    def __init__(self) -> None:
        self.parts: list[Part] = []
        self.offset = 0  # where the chunk being parsed starts in the body
        self.headers: list[tuple[bytes, bytes]] = []
        self.header_name = bytearray()
        self.header_value = bytearray()
        self.part_start = -1
        self.current: Part | None = None
        self.ended = False

    def on_part_begin(self) -> None:
        if len(self.parts) >= MAX_PARTS:
            raise bad(f"The form has more than {MAX_PARTS} parts.")
        self.headers, self.part_start, self.current = [], -1, None

    def on_header_field(self, data: bytes, start: int, end: int) -> None:
        if self.part_start < 0:
            self.part_start = self.offset + start
        self.header_name += data[start:end]

    def on_header_value(self, data: bytes, start: int, end: int) -> None:
        self.header_value += data[start:end]

    def on_header_end(self) -> None:
        self.headers.append((bytes(self.header_name).lower(), bytes(self.header_value)))
        self.header_name.clear()
        self.header_value.clear()

    def on_headers_finished(self) -> None:
        from python_multipart.multipart import parse_options_header

        headers = dict(self.headers)
        kind, options = parse_options_header(headers.get(b"content-disposition", b""))
        name = options.get(b"name")
        if kind != b"form-data" or name is None or self.part_start < 0:
            raise bad("Every part of the form needs a Content-Disposition: form-data header with a name.")
        filename = options.get(b"filename")
        content_type = headers.get(b"content-type")
        self.current = Part(name.decode("utf-8", "replace"), None if filename is None else
                            filename.decode("utf-8", "replace"), content_type.decode("latin-1") if content_type
                            else None, self.part_start)
        self.parts.append(self.current)

    def on_part_data(self, data: bytes, start: int, end: int) -> None:
        part = self.current
        if part is None:
            return
        part.size += end - start
        if part.filename is None:
            if part.size > FIELD_MAX:
                raise bad(f"The form field '{part.name[:64]}' is longer than {FIELD_MAX} bytes.")
            part.value += data[start:end]

    def on_part_end(self) -> None:
        self.current = None

    def on_end(self) -> None:
        self.ended = True


def boundary_of(content_type: str) -> bytes:
    from python_multipart.multipart import parse_options_header

    kind, options = parse_options_header(content_type)
    boundary = options.get(b"boundary")
    if kind != b"multipart/form-data" or not boundary or len(boundary) > 70:
        raise bad("This endpoint takes a multipart/form-data body (Content-Type with a boundary).")
    return boundary


async def read_form(req: Request, limit: int) -> Form:
    """The body, parsed as it arrives (a 413 past `limit`, a 400 for anything that is not a complete form)."""
    from python_multipart.exceptions import MultipartParseError
    from python_multipart.multipart import MultipartParser

    content_type = req.header(b"content-type") or ""
    boundary = boundary_of(content_type)
    reader = _Reader()
    callbacks = {name: getattr(reader, name) for name in (
        "on_part_begin", "on_header_field", "on_header_value", "on_header_end", "on_headers_finished",
        "on_part_data", "on_part_end", "on_end")}
    parser = MultipartParser(boundary, callbacks)  # type: ignore[arg-type]  # its TypedDict of callbacks

    chunks: list[bytes] = []
    size = 0
    try:
        async for chunk in req.iter_body(limit):
            reader.offset = size
            parser.write(chunk)
            chunks.append(chunk)
            size += len(chunk)
        parser.finalize()
    except MultipartParseError as exc:
        raise bad(f"The multipart body could not be read: {str(exc)[:200]}.") from None
    if not reader.ended:
        raise bad("The multipart body ended before its closing boundary.")
    return Form(chunks[0] if len(chunks) == 1 else b"".join(chunks), boundary, content_type, reader.parts)
