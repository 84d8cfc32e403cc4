"""An answer's body between the socket and its reader: the bytes received and not yet taken (O(bytes),
however the upstream chunked them), and their decompression, which never produces more than it is asked
for in one call (`decompress(max_length=…)`, the rest of the input kept for the next): a gzip bomb expands
only as fast, and only as far, as its reader takes it."""

import zlib

from ..upstream_errors import DecodingError


class BodyBuffer:
    """Bytes received and not yet taken. One chunk is kept as it came (the usual answer: no copy); a second
    one turns the buffer into a bytearray, so a body in a million 1-byte chunks is a million bytes, not a
    million objects."""

    __slots__ = ("_first", "_more", "size", "total")

    def __init__(self):
        self._first = None
        self._more = None
        self.size = 0  # bytes held now
        self.total = 0  # bytes ever received

    def append(self, data: bytes):
        size = len(data)
        self.size += size
        self.total += size
        if self._more is not None:
            self._more += data
        elif self._first is None:
            self._first = data
        else:
            self._more = bytearray(self._first)
            self._more += data
            self._first = None

    def take(self, limit: int | None = None) -> bytes:
        """Up to `limit` bytes (all when None) from the front; b"" when empty."""
        first = self._first
        if first is not None:
            if limit is None or len(first) <= limit:
                self._first = None
                self.size = 0
                return first
            self._more, self._first = bytearray(first), None
        more = self._more
        if more is None:
            return b""
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
