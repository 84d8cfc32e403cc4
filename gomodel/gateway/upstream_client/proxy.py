"""Egress through an HTTP proxy (both clients): HTTPS_PROXY for https upstreams (a CONNECT tunnel, TLS to the
provider inside it, verified against the provider's name), HTTP_PROXY for plain http ones (absolute-form
requests), NO_PROXY for the hosts reached directly; proxy basic auth from the proxy URL's user:password.
The gateway's settings read them from the environment (gomodel/settings.py, either case).

Failures name the proxy by `label` (scheme, host and port: never its credentials)."""

import asyncio
import base64
import ipaddress
from urllib.parse import unquote, urlsplit

from ..upstream_errors import ConnectError, RemoteProtocolError
from .bounds import MAX_HEAD_BYTES


class Proxy:
    __slots__ = ("host", "port", "auth", "label", "url", "user", "password")

    def __init__(self, url: str):
        parts = urlsplit(url if "://" in url else f"http://{url}")
        if parts.scheme.lower() != "http" or not parts.hostname:
            raise ValueError(f"an upstream proxy must be an http:// URL with a host (TLS to the proxy itself is not "
                             f"supported), not {parts.scheme}://{parts.hostname or ''}")
        self.host, self.port = parts.hostname, parts.port or 80
        self.label = f"http://{self.host}:{self.port}"
        self.url = self.label
        self.user = unquote(parts.username) if parts.username else None
        self.password = unquote(parts.password) if parts.password else ""
        self.auth = None
        if self.user is not None:
            token = base64.b64encode(f"{self.user}:{self.password}".encode()).decode("ascii")
            self.auth = f"Basic {token}"

    @property
    def key(self) -> tuple:
        return (self.host, self.port, self.auth)


class ProxyRules:
    """Which proxy, if any, a call to scheme://host:port goes through."""

    __slots__ = ("https", "http", "_bypass")

    def __init__(self, https: str = "", http: str = "", no_proxy: str = ""):
        self.https = Proxy(https) if https else None
        self.http = Proxy(http) if http else None
        self._bypass = [entry.strip().lower() for entry in no_proxy.split(",") if entry.strip()]

    def __bool__(self):
        return self.https is not None or self.http is not None

    def for_url(self, tls: bool, host: str, port: int) -> Proxy | None:
        proxy = self.https if tls else self.http
        if proxy is None or self.bypassed(host, port):
            return None
        return proxy

    def bypassed(self, host: str, port: int) -> bool:
        host = host.lower().strip("[]")
        try:
            address = ipaddress.ip_address(host)
        except ValueError:
            address = None
        for entry in self._bypass:
            if entry == "*":
                return True
            name, _, entry_port = entry.rpartition(":") if entry.count(":") == 1 else (entry, "", "")
            if entry_port and entry_port.isdigit():
                if int(entry_port) != port:
                    continue
            else:
                name = entry
            name = name.strip("[]")
            if address is not None:
                try:
                    if address in ipaddress.ip_network(name, strict=False):
                        return True
                except ValueError:
                    pass
                continue
            name = name.lstrip("*").lstrip(".")
            if host == name or host.endswith("." + name):
                return True
        return False


def connect_request(proxy: Proxy, host: str, port: int) -> bytes:
    authority = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    head = f"CONNECT {authority} HTTP/1.1\r\nhost: {authority}\r\n"
    if proxy.auth:
        head += f"proxy-authorization: {proxy.auth}\r\n"
    return (head + "\r\n").encode("idna" if not head.isascii() else "ascii")


class TunnelReply(asyncio.Protocol):
    """Reads the proxy's answer to CONNECT (bounded like any head); `established` is done when it came."""

    def __init__(self, loop, proxy: Proxy, authority: str):
        self.proxy, self.authority = proxy, authority
        self.transport: asyncio.Transport | None = None
        self.buffer = bytearray()
        self.established = loop.create_future()

    def connection_made(self, transport):
        self.transport = transport

    def data_received(self, data: bytes):
        if self.established.done():
            return
        self.buffer += data
        end = self.buffer.find(b"\r\n\r\n")
        if end < 0:
            if len(self.buffer) > MAX_HEAD_BYTES:
                self._fail(RemoteProtocolError(f"the proxy {self.proxy.label} answered CONNECT with more than "
                                               f"{MAX_HEAD_BYTES} bytes of head"))
            return
        status_line = bytes(self.buffer[:self.buffer.find(b"\r\n")])
        parts = status_line.split(b" ", 2)
        if len(parts) < 2 or not parts[0].startswith(b"HTTP/1.") or not parts[1].isdigit():
            self._fail(RemoteProtocolError(f"the proxy {self.proxy.label} answered CONNECT with something other "
                                           "than HTTP/1.x"))
        elif not parts[1].startswith(b"2"):
            reason = parts[2].decode("latin-1")[:100] if len(parts) > 2 else ""
            self._fail(ConnectError(f"the proxy {self.proxy.label} refused the tunnel to {self.authority}: HTTP "
                                    f"{parts[1].decode()} {reason}".rstrip()))
        elif end + 4 < len(self.buffer):
            self._fail(RemoteProtocolError(f"the proxy {self.proxy.label} sent bytes after its CONNECT answer"))
        else:
            self.established.set_result(None)

    def connection_lost(self, exc):
        if not self.established.done():
            self.established.set_exception(ConnectError(f"the proxy {self.proxy.label} closed the connection "
                                                        f"before the tunnel to {self.authority} was up"))

    def _fail(self, error: Exception):
        self.established.set_exception(error)
        assert self.transport is not None  # data came: connected
        self.transport.abort()
