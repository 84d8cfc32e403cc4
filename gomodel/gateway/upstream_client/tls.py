"""The TLS context upstream calls verify with (both clients): the system's CAs (SSL_CERT_FILE/SSL_CERT_DIR
honoured) and certifi's bundle (what httpx trusts, so a slim image without system CAs still reaches the
providers), plus UPSTREAM_CA_BUNDLE — or that bundle alone with UPSTREAM_CA_BUNDLE_ONLY; and the client
certificate UPSTREAM_CLIENT_CERT / UPSTREAM_CLIENT_KEY for upstreams that require mutual TLS."""

import ssl

import certifi
from django.conf import settings

from ..upstream_errors import ConnectError


def tls_context() -> ssl.SSLContext:
    bundle = settings.UPSTREAM_CA_BUNDLE
    try:
        if bundle and settings.UPSTREAM_CA_BUNDLE_ONLY:
            context = ssl.create_default_context(cafile=bundle)
        else:
            context = ssl.create_default_context()
            context.load_verify_locations(certifi.where())
            if bundle:
                context.load_verify_locations(bundle)
    except (OSError, ssl.SSLError) as exc:
        raise ConnectError(f"UPSTREAM_CA_BUNDLE ({bundle}) could not be loaded: {exc}") from None
    if settings.UPSTREAM_CLIENT_CERT:
        try:
            context.load_cert_chain(settings.UPSTREAM_CLIENT_CERT, settings.UPSTREAM_CLIENT_KEY or None)
        except (OSError, ssl.SSLError) as exc:
            raise ConnectError(f"UPSTREAM_CLIENT_CERT / UPSTREAM_CLIENT_KEY could not be loaded: {exc}") from None
    context.set_alpn_protocols(["http/1.1"])
    return context
