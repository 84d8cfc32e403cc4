"""How an upstream call fails: httpx's exception names and hierarchy (what each kind means decides
502 vs 504 and whether to retry, gomodel/gateway/upstream.py), without importing httpx (~5 MB a web
worker) for its classes. Every UpstreamClient raises these, the bench's comparison clients included
(bench/transports.py translates httpx's own)."""


class HTTPError(Exception):
    """An upstream call failed."""


class TransportError(HTTPError):
    pass


class TimeoutException(TransportError):
    pass


class ConnectTimeout(TimeoutException):
    pass


class ReadTimeout(TimeoutException):
    pass


class WriteTimeout(TimeoutException):
    pass


class PoolTimeout(TimeoutException):
    pass


class DeadlineExceeded(TimeoutException):
    """The upstream call (streaming or not) took longer than UPSTREAM_DEADLINE in all."""


class NetworkError(TransportError):
    pass


class ConnectError(NetworkError):
    pass


class ReadError(NetworkError):
    pass


class ProtocolError(TransportError):
    pass


class RemoteProtocolError(ProtocolError):
    pass


class LocalProtocolError(ProtocolError):
    pass


class UnsupportedProtocol(TransportError):
    pass


class DecodingError(HTTPError):
    pass


class ResponseTooLarge(HTTPError):
    """The upstream's body is larger than UPSTREAM_MAX_BODY_BYTES: read no further."""

