"""Every write the management API makes goes through one of these functions, each in a transaction
with its audit row. Tenants and keys are created/revoked by accounting.services (the same functions
the admin and the management commands use); saving through the ORM clears the gateway's caches in
every process (gomodel.gateway.invalidation), so a change is live everywhere as soon as it commits."""

import logging
import time
from datetime import date

import httpx
from django.conf import settings
from django.db import transaction

from accounting.models import ApiKey, ModelPrice, Tenant
from accounting.reports import parse_range, tenant_report, today_utc
from accounting.services import do_create_api_key, do_create_tenant, do_revoke_api_key
from providers.adapters import adapter_for
from providers.base import Target, error_message
from providers.models import ProviderConfig

from .audit import record

log = logging.getLogger(__name__)


def _apply(instance, data: dict) -> dict:
    """Set the given fields; return {field: [old, new]} for those that changed."""
    changes = {}
    for field, value in data.items():
        old = getattr(instance, field)
        if old != value:
            changes[field] = [old, value]
            setattr(instance, field, value)
    return changes


def _save_changes(instance, changes: dict, extra_fields=()):
    fields = list(changes) + list(extra_fields)
    if fields:
        if any(f.name == "updated_at" for f in instance._meta.fields):
            fields.append("updated_at")
        instance.save(update_fields=fields)


def _update(actor: str, instance, data: dict):
    """Apply the fields, save only what changed, and audit it, in the caller's transaction."""
    changes = _apply(instance, data)
    if changes:
        _save_changes(instance, changes)
        record(actor, "update", instance, changes)
    return instance


# -- tenants ----------------------------------------------------------------------------------------

@transaction.atomic
def do_api_create_tenant(actor: str, data: dict) -> Tenant:
    data = dict(data)
    tenant = do_create_tenant(data.pop("slug"), data.pop("name", ""))
    _save_changes(tenant, _apply(tenant, data))
    record(actor, "create", tenant, {"slug": tenant.slug, "name": tenant.name, **data})
    return tenant


@transaction.atomic
def do_api_update_tenant(actor: str, tenant: Tenant, data: dict) -> Tenant:
    return _update(actor, tenant, data)


@transaction.atomic
def do_api_deactivate_tenant(actor: str, tenant: Tenant) -> Tenant:
    if tenant.active:
        tenant.active = False
        tenant.save(update_fields=["active"])
        record(actor, "deactivate", tenant, {"active": [True, False]})
    return tenant


# -- API keys ---------------------------------------------------------------------------------------

@transaction.atomic
def do_api_create_key(actor: str, tenant: Tenant, data: dict) -> tuple[ApiKey, str]:
    """Returns the row and the plaintext; the plaintext goes to the caller once and nowhere else."""
    key, plaintext = do_create_api_key(tenant, name=data.get("name", ""), rpm=data.get("rpm_limit"),
                                       tpm=data.get("tpm_limit"), expires_at=data.get("expires_at"))
    record(actor, "create", key, {"tenant": tenant.pk, "prefix": key.prefix, "name": key.name,
                                  "rpm_limit": key.rpm_limit, "tpm_limit": key.tpm_limit,
                                  "expires_at": key.expires_at})
    return key, plaintext


@transaction.atomic
def do_api_update_key(actor: str, key: ApiKey, data: dict) -> ApiKey:
    return _update(actor, key, data)


@transaction.atomic
def do_api_revoke_key(actor: str, key: ApiKey) -> ApiKey:
    if key.active:
        do_revoke_api_key(key)
        record(actor, "revoke", key, {"active": [True, False]})
    return key


# -- provider configs -------------------------------------------------------------------------------

@transaction.atomic
def do_api_create_provider(actor: str, data: dict) -> ProviderConfig:
    data = dict(data)
    api_key = data.pop("api_key", "") or ""
    config = ProviderConfig(source=ProviderConfig.SOURCE_ADMIN, **data)
    if api_key:
        config.set_api_key(api_key)
    config.save()
    record(actor, "create", config, {**data, "api_key_set": bool(api_key)})
    return config


@transaction.atomic
def do_api_update_provider(actor: str, config: ProviderConfig, data: dict) -> ProviderConfig:
    data = dict(data)
    api_key = data.pop("api_key", None)
    changes = _apply(config, data)
    extra = []
    if api_key:  # write-only: an empty or missing key keeps the current one
        config.set_api_key(api_key)
        extra.append("api_key_encrypted")
    if changes or extra:
        _save_changes(config, changes, extra)
        record(actor, "update", config, {**changes, **({"api_key_changed": True} if extra else {})})
    return config


@transaction.atomic
def do_api_disable_provider(actor: str, config: ProviderConfig) -> ProviderConfig:
    if config.enabled:
        config.enabled = False
        config.save(update_fields=["enabled", "updated_at"])
        record(actor, "disable", config, {"enabled": [True, False]})
    return config


def target_for(config: ProviderConfig) -> Target:
    return Target(id=config.id, name=config.name, provider_type=config.provider_type, wire=config.spec.wire,
                  base_url=config.effective_base_url, api_key=config.api_key,
                  extra_models=tuple(config.extra_models))


def probe_provider(config: ProviderConfig, timeout: float | None = None) -> dict:
    """GET the upstream's model list with the config's own credentials: its models, or its error."""
    started = time.perf_counter()
    result = {"ok": False, "status": None, "models": [], "error": None, "latency_ms": 0}
    try:
        target = target_for(config)
    except ValueError as exc:  # the stored key cannot be decrypted
        result["error"] = str(exc)
        return result
    adapter = adapter_for(target.wire)
    request = adapter.build_models_request(target)
    timeout = timeout or min(settings.UPSTREAM_TIMEOUT, 15.0)
    try:
        response = httpx.request(request.method, request.url, headers=request.headers,
                                 timeout=httpx.Timeout(timeout, connect=min(settings.UPSTREAM_CONNECT_TIMEOUT,
                                                                             timeout)))
    except httpx.TimeoutException:
        result["error"] = f"Provider '{config.name}' did not answer in time."
    except (httpx.HTTPError, httpx.InvalidURL, ValueError) as exc:  # incl. a header the key cannot be sent in
        result["error"] = f"Could not reach provider '{config.name}' ({type(exc).__name__}: {exc})."
    else:
        result["status"] = response.status_code
        if response.status_code == 200:
            try:
                result["models"] = adapter.parse_models(response.content)
                result["ok"] = True
            except Exception as exc:  # noqa: BLE001 — an unparseable listing is a test failure, not ours
                result["error"] = f"Provider '{config.name}' sent a model list the gateway could not read ({exc})."
        else:
            message, _, _ = error_message(response.content, response.status_code)
            result["error"] = f"HTTP {response.status_code}: {message}"
    result["latency_ms"] = round((time.perf_counter() - started) * 1000)
    if result["error"] and target.api_key:
        result["error"] = result["error"].replace(target.api_key, "…")  # never echo the provider's key
    return result


# -- prices ---------------------------------------------------------------------------------------------

@transaction.atomic
def do_api_create_price(actor: str, data: dict) -> ModelPrice:
    price = ModelPrice.objects.create(**data)
    record(actor, "create", price, data)
    return price


@transaction.atomic
def do_api_update_price(actor: str, price: ModelPrice, data: dict) -> ModelPrice:
    return _update(actor, price, data)


# -- usage ----------------------------------------------------------------------------------------------

def tenant_usage(tenant: Tenant, start: date | None, end: date | None) -> dict:
    """The roll-ups GET /v1/usage gives the tenant, for any range: the same defaults (this month, or the
    month of the one bound given) but no cap on the span."""
    if start is None or end is None:
        start, end = parse_range(start and start.isoformat(), end and end.isoformat(), today_utc())
    return tenant_report(tenant.id, tenant.slug, start, end)
