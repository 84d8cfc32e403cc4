"""The upstream client where companies run it (issue #18): through an egress proxy (HTTPS_PROXY's CONNECT
tunnel with TLS to the provider inside it, HTTP_PROXY's absolute-form requests, basic auth from the proxy
URL, NO_PROXY), with a private CA (UPSTREAM_CA_BUNDLE, or only it) and a client certificate for mutual TLS
(UPSTREAM_CLIENT_CERT / UPSTREAM_CLIENT_KEY). Failures are typed (502/504) and name the proxy, never its
credentials. The proxy and the upstreams are the tests' own (tests/network_fixtures.py)."""

import asyncio
import base64

import pytest

from gomodel.gateway import upstream_errors
from gomodel.gateway.upstream import transport_error
from tests.network_fixtures import Certs, Proxy, Upstream

SECRET = "s3cr3t-pw"


@pytest.fixture(scope="module")
def certs(tmp_path_factory):
    return Certs(tmp_path_factory.mktemp("certs"))


@pytest.fixture(params=["loop", "aiohttp"])
def make_client(request, settings):
    from gomodel.gateway.upstream_client import new_client

    settings.UPSTREAM_CLIENT = request.param
    settings.HTTPS_PROXY = settings.HTTP_PROXY = settings.NO_PROXY = ""
    settings.UPSTREAM_CA_BUNDLE = settings.UPSTREAM_CLIENT_CERT = settings.UPSTREAM_CLIENT_KEY = ""
    settings.UPSTREAM_CA_BUNDLE_ONLY = False
    settings.UPSTREAM_CONNECT_TIMEOUT = 3
    return new_client


def run(coro):
    return asyncio.run(coro)


async def post(make_client, url):
    async with make_client() as client:
        return await client.post(url, content=b"{}")


async def failure(make_client, url) -> upstream_errors.HTTPError:
    async with make_client() as client:
        with pytest.raises(upstream_errors.HTTPError) as caught:
            await client.post(url, content=b"{}")
        return caught.value


def status_of(error) -> int:
    return transport_error(type("T", (), {"name": "p"})(), error).status


# -- egress proxy ------------------------------------------------------------------------------------

def test_an_https_upstream_is_reached_through_a_connect_tunnel(make_client, settings, certs):
    settings.UPSTREAM_CA_BUNDLE = str(certs.ca)

    async def go():
        async with Upstream(certs.server_context()) as up, Proxy("gw", SECRET) as proxy:
            settings.HTTPS_PROXY = proxy.url("gw", SECRET)
            response = await post(make_client, f"https://localhost:{up.port}/v1/chat/completions")
            return response.status_code, response.content, proxy.seen, up.requests, up.port

    status, body, seen, requests, port = run(go())
    assert (status, body) == (200, b'{"ok": true}')
    token = "Basic " + base64.b64encode(f"gw:{SECRET}".encode()).decode()
    assert seen[0][:2] == ("CONNECT", f"localhost:{port}")
    assert seen[0][2] == token
    # TLS was to the provider (its certificate names localhost): the request inside is origin-form
    assert requests[0].startswith(b"POST /v1/chat/completions HTTP/1.1\r\n")
    assert b"proxy-authorization" not in requests[0].lower()


def test_an_http_upstream_is_reached_by_absolute_form_through_the_proxy(make_client, settings):
    async def go():
        async with Upstream() as up, Proxy("gw", SECRET) as proxy:
            settings.HTTP_PROXY = proxy.url("gw", SECRET)
            response = await post(make_client, f"http://127.0.0.1:{up.port}/v1/embeddings")
            return response.status_code, proxy.seen, up.port

    status, seen, port = run(go())
    assert status == 200
    method, target, auth = seen[0]
    assert (method, target) == ("POST", f"http://127.0.0.1:{port}/v1/embeddings")
    assert auth == "Basic " + base64.b64encode(f"gw:{SECRET}".encode()).decode()


def test_no_proxy_hosts_are_reached_directly(make_client, settings):
    async def go():
        async with Upstream() as up, Proxy() as proxy:
            settings.HTTP_PROXY = proxy.url()
            settings.NO_PROXY = "example.com, 127.0.0.0/8"
            response = await post(make_client, f"http://127.0.0.1:{up.port}/v1/x")
            return response.status_code, proxy.seen, len(up.requests)

    assert run(go()) == (200, [], 1)


def test_a_proxy_refusing_the_credentials_is_a_502_naming_the_proxy_not_the_password(make_client, settings, certs):
    settings.UPSTREAM_CA_BUNDLE = str(certs.ca)

    async def go():
        async with Upstream(certs.server_context()) as up, Proxy("gw", SECRET) as proxy:
            settings.HTTPS_PROXY = proxy.url("gw", "wrong-" + SECRET)
            error = await failure(make_client, f"https://localhost:{up.port}/v1/x")
            return error, proxy.port

    error, port = run(go())
    assert isinstance(error, upstream_errors.ConnectError), repr(error)
    assert status_of(error) == 502
    assert f"127.0.0.1:{port}" in str(error) and "407" in str(error)
    assert SECRET not in str(error) and "gw:" not in str(error)


def test_an_unreachable_proxy_is_a_502_naming_it(make_client, settings):
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    settings.HTTPS_PROXY = f"http://gw:{SECRET}@127.0.0.1:{port}"
    settings.HTTP_PROXY = settings.HTTPS_PROXY
    for url in ("https://provider.test/v1/x", "http://provider.test/v1/x"):
        error = run(failure(make_client, url))
        assert isinstance(error, upstream_errors.ConnectError), repr(error)
        assert status_of(error) == 502
        assert f"127.0.0.1:{port}" in str(error) and SECRET not in str(error)


# -- private CAs and mutual TLS -----------------------------------------------------------------------

def test_a_private_ca_is_trusted_only_when_configured(make_client, settings, certs):
    async def go():
        async with Upstream(certs.server_context()) as up:
            url = f"https://localhost:{up.port}/v1/x"
            unknown = await failure(make_client, url)
            settings.UPSTREAM_CA_BUNDLE = str(certs.ca)
            added = await post(make_client, url)
            settings.UPSTREAM_CA_BUNDLE_ONLY = True
            only = await post(make_client, url)
            return unknown, added.status_code, only.status_code

    unknown, added, only = run(go())
    assert isinstance(unknown, upstream_errors.ConnectError) and "CERTIFICATE_VERIFY_FAILED" in str(unknown)
    assert (added, only) == (200, 200)


def test_ca_bundle_only_replaces_the_default_roots(settings, certs, tmp_path):
    from gomodel.gateway.upstream_client.tls import tls_context

    settings.UPSTREAM_CA_BUNDLE, settings.UPSTREAM_CLIENT_CERT = str(certs.ca), ""
    settings.UPSTREAM_CA_BUNDLE_ONLY = False
    added = len(tls_context().get_ca_certs())
    settings.UPSTREAM_CA_BUNDLE_ONLY = True
    assert len(tls_context().get_ca_certs()) == 1 < added  # certifi's roots are gone


def test_an_upstream_requiring_a_client_certificate_gets_the_configured_one(make_client, settings, certs):
    settings.UPSTREAM_CA_BUNDLE = str(certs.ca)

    async def go():
        async with Upstream(certs.server_context(require_client_cert=True)) as up:
            url = f"https://localhost:{up.port}/v1/x"
            without = await failure(make_client, url)
            settings.UPSTREAM_CLIENT_CERT, settings.UPSTREAM_CLIENT_KEY = str(certs.client_cert), str(certs.client_key)
            with_cert = await post(make_client, url)
            return without, with_cert.status_code, len(up.requests)

    without, status, requests = run(go())
    assert status_of(without) == 502, repr(without)
    assert status == 200 and requests == 1  # the call without a certificate never reached the handler


def test_mutual_tls_inside_a_proxy_tunnel(make_client, settings, certs):
    settings.UPSTREAM_CA_BUNDLE = str(certs.ca)
    settings.UPSTREAM_CLIENT_CERT, settings.UPSTREAM_CLIENT_KEY = str(certs.client_cert), str(certs.client_key)

    async def go():
        async with Upstream(certs.server_context(require_client_cert=True)) as up, Proxy() as proxy:
            settings.HTTPS_PROXY = proxy.url()
            response = await post(make_client, f"https://localhost:{up.port}/v1/x")
            return response.status_code, [method for method, _, _ in proxy.seen]

    assert run(go()) == (200, ["CONNECT"])
