"""Test a provider config: GET the upstream's model list with the config's own credentials, as the gateway
would. The one implementation behind the admin's "Test connection" and the API's POST …/test."""

import time
from dataclasses import dataclass, field

import httpx
import orjson
from django.conf import settings

from providers.adapters import adapter_for
from providers.base import error_message, scrub_secrets
from providers.models import ProviderConfig

MODELS_SHOWN = 8


@dataclass
class ConnectionResult:
    ok: bool
    url: str = ""
    status: int | None = None
    models: list[str] = field(default_factory=list)
    error: str = ""
    elapsed_ms: float = 0.0

    def summary(self) -> str:
        if not self.ok:
            return self.error
        shown = ", ".join(self.models[:MODELS_SHOWN])
        more = f" and {len(self.models) - MODELS_SHOWN} more" if len(self.models) > MODELS_SHOWN else ""
        return f"{len(self.models)} models ({shown}{more}) in {self.elapsed_ms:.0f} ms"

    def as_dict(self) -> dict:
        return {"ok": self.ok, "status": self.status, "models": self.models, "error": self.error or None,
                "latency_ms": round(self.elapsed_ms)}


def test_connection(config: ProviderConfig, transport: httpx.BaseTransport | None = None) -> ConnectionResult:
    """Never raises, never shows the key. The key goes only to the config's stored base URL: changing
    that URL requires entering the key again (accounting.provider_configs.services.do_update_provider)."""
    try:
        target = config.as_target()
    except ValueError as exc:  # the stored key cannot be decrypted
        return ConnectionResult(False, error=str(exc))
    adapter = adapter_for(target.wire)
    request = adapter.build_models_request(target)
    result = ConnectionResult(False, request.url)
    limit = min(settings.UPSTREAM_TIMEOUT, 15.0)
    timeout = httpx.Timeout(limit, connect=min(settings.UPSTREAM_CONNECT_TIMEOUT, limit))
    started = time.perf_counter()
    try:
        with httpx.Client(timeout=timeout, transport=transport, trust_env=False) as client:
            response = client.request(request.method, request.url, headers=request.headers)
        result.status = response.status_code
        if response.status_code != 200:
            message, _, code = error_message(response.content, response.status_code, target)
            result.error = f"HTTP {response.status_code}: {message}" + (f" [{code}]" if code else "")
        else:
            result.models = adapter.parse_models(response.content)
            result.ok = True
    except httpx.TimeoutException:
        result.error = f"Provider '{config.name}' did not answer in time."
    except (httpx.HTTPError, httpx.InvalidURL) as exc:
        result.error = f"Could not reach provider '{config.name}' ({type(exc).__name__}: {exc or 'no answer'})."
    except (ValueError, TypeError, AttributeError, orjson.JSONDecodeError) as exc:
        result.error = f"Provider '{config.name}' sent a model list the gateway could not read ({exc})."
    result.elapsed_ms = (time.perf_counter() - started) * 1000
    # An upstream or a transport error must not echo the key (or anything like one) back.
    result.error = scrub_secrets(result.error, target.api_key, target.base_url)
    return result
# A pytest run importing it must not collect it (through __dict__: a function attribute mypy does not know).
test_connection.__dict__["__test__"] = False
