"""An answer's body between the socket and its reader: the bytes received and not yet taken (O(bytes),
however the upstream chunked them), and their decompression, which never produces more than it is asked
for in one call (`decompress(max_length=…)`, the rest of the input kept for the next): a gzip bomb expands
only as fast, and only as far, as its reader takes it."""

import zlib

from ..upstream_errors import DecodingError

COALESCE = 64  # chunks kept as they came before they are folded into the buffer's one bytearray


class BodyBuffer:
    """Bytes received and not yet taken, O(bytes) however the upstream chunked them: chunks are kept as they
    came (the usual answer, a few chunks: no copy until taken, as a list join) until COALESCE of them wait,
    then folded into one bytearray, so a body in a million 1-byte chunks is a million bytes, not a million
    objects."""

    __slots__ = ("_chunks", "_more", "size", "total")

    def __init__(self):
        self._chunks = []  # the newest bytes, as they came (fewer than COALESCE)
        self._more = None  # the older bytes, folded
        self.size = 0  # bytes held now
        self.total = 0  # bytes ever received

    def append(self, data: bytes):
        size = len(data)
        self.size += size
        self.total += size
        chunks = self._chunks
        chunks.append(data)
        if len(chunks) >= COALESCE:
            self._fold()

    def _fold(self):
        chunks = self._chunks
        if self._more is None:
            self._more = bytearray().join(chunks)
        else:
            self._more += b"".join(chunks)
        chunks.clear()

    def take(self, limit: int | None = None) -> bytes:
        """Up to `limit` bytes (all when None) from the front; b"" when empty."""
        chunks = self._chunks
        if self._more is None:
            if not chunks:
                return b""
            data = chunks[0] if len(chunks) == 1 else b"".join(chunks)
            if limit is None or len(data) <= limit:
                chunks.clear()
                self.size = 0
                return data
            self._more = bytearray(data)
            chunks.clear()
        elif chunks:
            self._fold()
        more = self._more
        if limit is None or len(more) <= limit:
            self._more = None
            self.size = 0
            return bytes(more)
        data = bytes(more[:limit])
        del more[:limit]  # from the front of a bytearray: no move of the rest
        self.size -= limit
        return data


ENCODINGS = {"gzip": 47, "x-gzip": 47, "deflate": zlib.MAX_WBITS}  # zlib's wbits: 47 = gzip or zlib header


class Inflater:
    """A gzip or deflate body, decompressed a bounded slice at a time."""

    __slots__ = ("_zlib", "_input", "_more")

    def __init__(self, encoding: str):
        self._zlib = zlib.decompressobj(ENCODINGS[encoding])
        self._input = b""
        self._more = False  # the last call filled its slice: zlib may hold output for input it has taken

    @property
    def pending(self) -> bool:
        return bool(self._input) or self._more

    def feed(self, data: bytes):
        self._input = self._input + data if self._input else data

    def inflate(self, limit: int) -> bytes:
        if not self.pending:
            return b""
        try:
            out = self._zlib.decompress(self._input, limit)
        except zlib.error as exc:
            self._input, self._more = b"", False
            raise DecodingError(f"the upstream's compressed body is broken: {exc}") from None
        self._input = self._zlib.unconsumed_tail
        self._more = len(out) >= limit
        return out
