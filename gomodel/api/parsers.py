"""The management API's JSON parser: the same depth and size guard as /v1 (JSON_MAX_DEPTH,
JSON_MAX_ITEMS), checked on the raw bytes before the json module builds anything. A body 200,000
levels deep was a 500 and a RecursionError in the log; it is a 400 `json_too_complex` now."""

from io import BytesIO

from django.conf import settings
from rest_framework.exceptions import ParseError
from rest_framework.parsers import JSONParser

from gomodel.gateway.errors import GatewayError
from gomodel.gateway.json_body import check_json_shape


class JSONTooComplex(ParseError):
    default_code = "json_too_complex"


class GuardedJSONParser(JSONParser):
    def parse(self, stream, media_type=None, parser_context=None):
        raw = stream.read() if stream is not None else b""
        try:
            check_json_shape(raw)
        except GatewayError as exc:
            raise JSONTooComplex(exc.message) from None
        try:
            return super().parse(BytesIO(raw), media_type, parser_context)
        except RecursionError:  # a shape the guard let through but the parser cannot take
            raise JSONTooComplex(f"The request body nests JSON deeper than {settings.JSON_MAX_DEPTH} "
                                 "levels.") from None
