"""What the upstream client's network tests need: a private CA with server and client certificates (made
with `cryptography`), TLS and plain upstreams answering one JSON body, and a small HTTP proxy (CONNECT
tunnels and absolute-form forwarding, optional basic auth) that records what it was asked."""

import asyncio
import base64
import datetime
import ipaddress
import ssl
from pathlib import Path

OK = b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 12\r\n\r\n{\"ok\": true}"


class Certs:
    """A CA, a server certificate for localhost/127.0.0.1 and a client certificate, as PEM files in `folder`."""

    def __init__(self, folder: Path, name: str = "Test CA"):
        from cryptography import x509
        from cryptography.hazmat.primitives import hashes, serialization
        from cryptography.hazmat.primitives.asymmetric import ec
        from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

        now = datetime.datetime.now(datetime.UTC)

        def pem_key(key, path):
            path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                               serialization.NoEncryption()))

        def build(subject, issuer, public_key, signer, ca=False, extensions=()):
            builder = (x509.CertificateBuilder().subject_name(subject).issuer_name(issuer).public_key(public_key)
                       .serial_number(x509.random_serial_number())
                       .not_valid_before(now - datetime.timedelta(minutes=1))
                       .not_valid_after(now + datetime.timedelta(days=1))
                       .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True))
            for extension in extensions:
                builder = builder.add_extension(extension, critical=False)
            return builder.sign(signer, hashes.SHA256())

        folder.mkdir(parents=True, exist_ok=True)
        ca_key = ec.generate_private_key(ec.SECP256R1())
        ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
        ca = build(ca_name, ca_name, ca_key.public_key(), ca_key, ca=True)
        self.ca = folder / "ca.pem"
        self.ca.write_bytes(ca.public_bytes(serialization.Encoding.PEM))

        server_key = ec.generate_private_key(ec.SECP256R1())
        server = build(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")]), ca_name,
                       server_key.public_key(), ca_key, extensions=[x509.SubjectAlternativeName(
                           [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))])])
        self.server_cert, self.server_key = folder / "server.pem", folder / "server.key"
        self.server_cert.write_bytes(server.public_bytes(serialization.Encoding.PEM))
        pem_key(server_key, self.server_key)

        client_key = ec.generate_private_key(ec.SECP256R1())
        client = build(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "gateway")]), ca_name,
                       client_key.public_key(), ca_key,
                       extensions=[x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH])])
        self.client_cert, self.client_key = folder / "client.pem", folder / "client.key"
        self.client_cert.write_bytes(client.public_bytes(serialization.Encoding.PEM))
        pem_key(client_key, self.client_key)

    def server_context(self, require_client_cert: bool = False) -> ssl.SSLContext:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(self.server_cert, self.server_key)
        if require_client_cert:
            context.verify_mode = ssl.CERT_REQUIRED
            context.load_verify_locations(self.ca)
        return context


async def read_head(reader) -> bytes:
    return await reader.readuntil(b"\r\n\r\n")


async def read_request(reader) -> bytes:
    head = await read_head(reader)
    length = 0
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            length = int(line.split(b":", 1)[1])
    return head + (await reader.readexactly(length) if length else b"")


class Upstream:
    """Answers every request with OK; records the request heads. TLS with `tls`."""

    def __init__(self, tls: ssl.SSLContext | None = None):
        self.tls = tls
        self.requests: list[bytes] = []

    async def __aenter__(self):
        self.server = await asyncio.start_server(self._handle, "127.0.0.1", 0, ssl=self.tls)
        self.port = self.server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc):
        self.server.close()

    async def _handle(self, reader, writer):
        try:
            while True:
                self.requests.append(await read_request(reader))
                writer.write(OK)
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError, ssl.SSLError, asyncio.LimitOverrunError):
            pass
        finally:
            writer.close()


class Proxy:
    """An HTTP proxy: CONNECT tunnels and absolute-form forwarding; with `user`/`password`, 407 unless the
    request carries them. `seen`: (method, target, proxy-authorization) of each request it was asked."""

    def __init__(self, user: str | None = None, password: str = ""):
        self.expected = None
        if user is not None:
            self.expected = "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()
        self.seen: list[tuple[str, str, str | None]] = []

    async def __aenter__(self):
        self.server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.port = self.server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc):
        self.server.close()

    def url(self, user: str | None = None, password: str = "") -> str:
        auth = f"{user}:{password}@" if user is not None else ""
        return f"http://{auth}127.0.0.1:{self.port}"

    async def _handle(self, reader, writer):
        try:
            head = await read_head(reader)
            lines = head.decode("latin-1").split("\r\n")
            method, target, _ = lines[0].split(" ", 2)
            headers = {}
            for line in lines[1:]:
                if ":" in line:
                    name, value = line.split(":", 1)
                    headers[name.strip().lower()] = value.strip()
            auth = headers.get("proxy-authorization")
            self.seen.append((method, target, auth))
            if self.expected is not None and auth != self.expected:
                writer.write(b"HTTP/1.1 407 Proxy Authentication Required\r\ncontent-length: 0\r\n\r\n")
                await writer.drain()
                return
            if method == "CONNECT":
                host, port = target.rsplit(":", 1)
                up_reader, up_writer = await asyncio.open_connection(host, int(port))
                writer.write(b"HTTP/1.1 200 Connection established\r\n\r\n")
            else:  # absolute-form: to the origin, as origin-form
                rest = target.split("://", 1)[1]
                authority, _, path = rest.partition("/")
                host, _, port = authority.partition(":")
                up_reader, up_writer = await asyncio.open_connection(host, int(port or 80))
                kept = [line for line in lines[1:] if line and not line.lower().startswith("proxy-authorization")]
                up_writer.write(f"{method} /{path} HTTP/1.1\r\n".encode() + "\r\n".join(kept).encode()
                                + b"\r\n\r\n")
            await asyncio.gather(self._pipe(reader, up_writer), self._pipe(up_reader, writer))
        except (asyncio.IncompleteReadError, ConnectionError, OSError):
            pass
        finally:
            writer.close()

    @staticmethod
    async def _pipe(reader, writer):
        try:
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            writer.close()
