"""What goes on the wire for a request: where a URL leads (its origin, and the proxy on the way, if any)
and the request's head."""

from urllib.parse import quote, urlsplit

from ..upstream_errors import LocalProtocolError, UnsupportedProtocol
from .proxy import Proxy, ProxyRules


class Origin:
    """scheme://host:port, and how it is reached: directly, through a CONNECT tunnel (https) or by a
    forwarding proxy (http: the request's target is then the absolute URL)."""

    __slots__ = ("key", "host", "port", "tls", "host_header", "proxy", "forward_prefix")

    def __init__(self, host: str, port: int, tls: bool, host_header: bytes, proxy: Proxy | None = None):
        self.key = (tls, host, port, proxy.key if proxy is not None else None)
        self.host, self.port, self.tls, self.host_header, self.proxy = host, port, tls, host_header, proxy
        self.forward_prefix = b"http://" + host_header if proxy is not None and not tls else None


URL_CACHE_SIZE = 4096


class UrlCache:
    """(origin, request target) of a URL; cached, since a provider's URLs repeat."""

    __slots__ = ("_urls", "_proxies")

    def __init__(self, proxies: ProxyRules):
        self._urls: dict[str, tuple[Origin, bytes]] = {}
        self._proxies = proxies

    def parse(self, url: str) -> tuple[Origin, bytes]:
        hit = self._urls.get(url)
        if hit is not None:
            return hit
        try:
            parts = urlsplit(url)
            scheme, host, port = parts.scheme.lower(), parts.hostname, parts.port
        except ValueError as exc:
            raise UnsupportedProtocol(f"invalid upstream URL: {exc}") from None
        if scheme not in ("http", "https") or not host:
            raise UnsupportedProtocol(f"the upstream URL must be http:// or https:// with a host, not {url[:100]!r}")
        tls = scheme == "https"
        port = port or (443 if tls else 80)
        target = quote((parts.path or "/") + (f"?{parts.query}" if parts.query else ""),
                       safe="/:?#[]@!$&'()*+,;=%-._~").encode("ascii")
        netloc = parts.netloc.rsplit("@", 1)[-1]  # never send user:password@ as the Host
        host_header = netloc.encode("ascii") if netloc.isascii() else netloc.encode("idna")
        origin = Origin(host, port, tls, host_header, self._proxies.for_url(tls, host, port))
        if origin.forward_prefix is not None:
            target = origin.forward_prefix + target
        if len(self._urls) >= URL_CACHE_SIZE:
            self._urls.clear()
        hit = self._urls[url] = (origin, target)
        return hit


def request_head(method: str, origin: Origin, target: bytes, headers, body: bytes | None) -> bytes:
    parts = [method.encode("ascii"), b" ", target, b" HTTP/1.1\r\nhost: ", origin.host_header, b"\r\n"]
    encoding_asked = False
    for name, value in (headers or {}).items():
        if "\n" in value or "\r" in value or "\n" in name or "\r" in name:
            raise LocalProtocolError(f"header {name!r} holds a line break")
        try:
            parts.append(f"{name}: {value}\r\n".encode("latin-1"))
        except UnicodeEncodeError:
            raise LocalProtocolError(f"header {name!r} is not latin-1") from None
        encoding_asked = encoding_asked or name.lower() == "accept-encoding"
    if not encoding_asked:
        parts.append(b"accept-encoding: gzip, deflate\r\n")
    if origin.forward_prefix is not None and origin.proxy.auth:
        parts.append(b"proxy-authorization: " + origin.proxy.auth.encode("ascii") + b"\r\n")
    if body is not None or method in ("POST", "PUT", "PATCH"):
        parts.append(b"content-length: %d\r\n" % len(body or b""))
    parts.append(b"\r\n")
    if body:
        parts.append(body)
    return b"".join(parts)
