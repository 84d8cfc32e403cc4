"""Reading a /v1 JSON body: its shape is checked on the raw bytes before orjson builds anything.

orjson reads 1024 levels of nesting but writes only 255 (a deeper body was a 500 when it was sent
on), and 9 MiB of `{}` costs ~300 MB of Python objects once parsed. So a body nested deeper than
JSON_MAX_DEPTH or holding more than JSON_MAX_ITEMS containers and elements is a 400 before any work.

Cost (measured): a typical request has fewer brackets than the depth limit, which one C-level
`bytes.translate` shows (~1 µs for 2 kB, about what orjson.loads of it costs); a body with more
brackets (tools with JSON schemas) pays for a scan with strings cut out, all in C (split/join or one
regex, one translate, one accumulate over the brackets alone): about twice orjson.loads of it.
"""

import re
from itertools import accumulate

import orjson
from django.conf import settings

from .errors import invalid

# A JSON string literal (escapes included); strings may hold any bracket, comma or quote. Possessive,
# and an unterminated string runs to the end: every match attempt succeeds, the scan stays linear and
# keeps no backtracking state (a plain `(?:...)*` held ~500 MB for 6 MB of escaped quotes).
_STRING = re.compile(rb'"[^"\\]*+(?:\\(?:.|\Z)[^"\\]*+)*+(?:"|\Z)', re.DOTALL)
_OTHER_BYTES = bytes(sorted(set(range(256)) - set(b"[]{}")))
_NOT_OPEN_OR_COMMA = bytes(sorted(set(range(256)) - set(b"[{,")))
_STEPS = bytes.maketrans(b"[{]}", b"\x01\x01\xff\xff")  # +1 / -1 as signed bytes


def too_complex(message: str):
    return invalid(message, code="json_too_complex")


def _outside_strings(raw: bytes) -> bytes:
    if b'\\"' not in raw:  # no escaped quote: strings are every other piece between quotes
        return b"".join(raw.split(b'"')[0::2])
    return _STRING.sub(b"", raw)


def check_json_shape(raw: bytes, max_depth: int | None = None, max_items: int | None = None) -> None:
    """Raise a 400 if `raw` nests deeper than max_depth or holds more than max_items values."""
    max_depth = settings.JSON_MAX_DEPTH if max_depth is None else max_depth
    max_items = settings.JSON_MAX_ITEMS if max_items is None else max_items
    marks = raw.translate(None, _NOT_OPEN_OR_COMMA)  # one C pass; for 2 kB, ~1 µs (3 counts: ~2-3 µs)
    if len(marks) <= max_items and len(marks) - marks.count(b",") <= max_depth:
        return  # upper bounds (brackets and commas inside strings count too) already under both limits
    bare = _outside_strings(raw)
    opens = bare.count(b"{") + bare.count(b"[")
    # Every value but the first in a container follows a comma; every container opens once.
    if opens + bare.count(b",") > max_items:
        raise too_complex(f"The request body holds more than {max_items} JSON values and containers.")
    if opens <= max_depth:
        return
    steps = bare.translate(_STEPS, _OTHER_BYTES)  # the brackets alone, as +1/-1
    if len(steps) > 2 * opens + 1:
        return  # more closers than openers: not JSON, and orjson says so
    if max(accumulate(memoryview(steps).cast("b"))) > max_depth:
        raise too_complex(f"The request body nests JSON deeper than {max_depth} levels.")


def parse_json_object(raw: bytes) -> dict:
    """The body as a dict, or a 400 `invalid_request_error` (empty, not JSON, too deep, too big, not an object)."""
    if not raw.strip():
        raise invalid("The request body is empty; send a JSON object.", code="invalid_json")
    check_json_shape(raw)
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise invalid(f"The request body is not valid JSON: {exc}.", code="invalid_json") from None
    if not isinstance(body, dict):
        raise invalid("The request body must be a JSON object.", code="invalid_json")
    return body
