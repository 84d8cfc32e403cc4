"""The error envelope every /v1 answer uses: {"error": {"type", "message", "param", "code"}}."""

import orjson

INVALID_REQUEST = "invalid_request_error"
AUTHENTICATION = "authentication_error"
NOT_FOUND = "not_found_error"
PERMISSION = "permission_error"  # authenticated, but this key or its tenant may not do that (allow-lists)
RATE_LIMIT = "rate_limit_error"
PROVIDER = "provider_error"


class GatewayError(Exception):
    attribution: object = None  # the call's labels and end user once read: a refusal's access line names them

    def __init__(self, status: int, type: str, message: str, param: str | None = None,
                 code: str | None = None, headers: list[tuple[bytes, bytes]] | None = None):
        super().__init__(message)
        self.status = status
        self.type = type
        self.message = message
        self.param = param
        self.code = code
        self.headers = headers or []

    def payload(self) -> dict:
        return {"error": {"type": self.type, "message": self.message, "param": self.param, "code": self.code}}

    def body(self) -> bytes:
        return orjson.dumps(self.payload())


def invalid(message: str, param: str | None = None, code: str | None = None) -> GatewayError:
    return GatewayError(400, INVALID_REQUEST, message, param, code)
