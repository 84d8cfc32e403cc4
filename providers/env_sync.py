"""What the environment configures: the providers (<P>_API_KEY, with <P>_API_KEY_2, _3, … for a key pool /
<P>_BASE_URL / <P>_MODELS / the quotas <P>_RPM, <P>_TPM, <P>_CONCURRENCY, <P>_MODEL_QUOTAS) and the virtual
models (VIRTUAL_MODELS). Reading only: the rows are written, audited, by
accounting.provider_configs.services.do_sync_env_providers / do_sync_env_aliases (`manage.py sync_providers`,
run at every start)."""

import json
from collections.abc import Mapping
from typing import Any

from django.core.exceptions import ImproperlyConfigured

from .base import QUOTA_MAX, parse_model_quotas
from .catalogue import CATALOGUE, ProviderSpec
from .models import parse_alias_targets


def env_providers(environ: Mapping[str, str]) -> list[dict[str, Any]]:
    """The providers the environment enables, in catalogue order."""
    found = []
    for spec in CATALOGUE.values():
        key = environ.get(f"{spec.env_prefix}_API_KEY", "").strip()
        base_url = environ.get(f"{spec.env_prefix}_BASE_URL", "").strip()
        models = environ.get(f"{spec.env_prefix}_MODELS", "").strip()
        if spec.needs_key and not key:
            continue
        if spec.needs_base_url and not base_url:
            if key and not spec.default_base_url:
                raise ImproperlyConfigured(
                    f"{spec.env_prefix}_API_KEY is set but {spec.env_prefix}_BASE_URL is not: "
                    f"{spec.label} has no default base URL."
                )
            continue
        found.append({"name": spec.key, "provider_type": spec.key, "api_key": key, "base_url": base_url,
                      "models": models, "extra_keys": extra_keys(environ, spec.env_prefix),
                      **quotas(environ, spec)})
    return found


def quotas(environ: Mapping[str, str], spec: ProviderSpec) -> dict[str, Any]:
    """<P>_RPM, <P>_TPM, <P>_CONCURRENCY (whole numbers >= 1; empty: none) and <P>_MODEL_QUOTAS (JSON, as the
    config's model_quotas): the provider account's quotas, shared by every tenant."""
    found: dict[str, Any] = {}
    for name, field, raw in ((f"{spec.env_prefix}_RPM", "rpm_limit", environ.get(f"{spec.env_prefix}_RPM", "")),
                             (f"{spec.env_prefix}_TPM", "tpm_limit", environ.get(f"{spec.env_prefix}_TPM", "")),
                             (f"{spec.env_prefix}_CONCURRENCY", "concurrency_limit",
                              environ.get(f"{spec.env_prefix}_CONCURRENCY", ""))):
        raw = raw.strip()
        if raw and not (raw.isdigit() and 1 <= int(raw) <= QUOTA_MAX):
            raise ImproperlyConfigured(f"{name} must be a whole number >= 1 (or empty: no quota), not {raw!r}.")
        found[field] = int(raw) if raw else None
    raw = environ.get(f"{spec.env_prefix}_MODEL_QUOTAS", "").strip()
    try:
        found["model_quotas"] = json.loads(raw) if raw else {}
        parse_model_quotas(found["model_quotas"])
    except ValueError as exc:  # JSONDecodeError is one
        raise ImproperlyConfigured(f"{spec.env_prefix}_MODEL_QUOTAS: {exc}") from None
    return found


def extra_keys(environ: Mapping[str, str], prefix: str) -> list[tuple[str, str]]:
    """[(label, key)] of <prefix>_API_KEY_2, _3, … (gaps allowed), labelled "key-2", "key-3", … by their number."""
    head = f"{prefix}_API_KEY_"
    found = []
    for name, value in environ.items():
        number = name[len(head):] if name.startswith(head) else ""
        if number.isdigit() and int(number) >= 2 and value.strip():
            found.append((int(number), value.strip()))
    return [(f"key-{n}", key) for n, key in sorted(found)]


def parse_virtual_models(raw: str) -> dict[str, list[dict[str, Any]]]:
    """VIRTUAL_MODELS: {"alias": [targets…]} (see parse_alias_targets for the target forms)."""
    if not raw.strip():
        return {}
    try:
        data = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise ImproperlyConfigured(f"VIRTUAL_MODELS is not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise ImproperlyConfigured("VIRTUAL_MODELS must be a JSON object of alias name -> targets.")
    aliases = {}
    for name, targets in data.items():
        try:
            aliases[name] = parse_alias_targets(targets)
        except ValueError as exc:
            raise ImproperlyConfigured(f"VIRTUAL_MODELS alias '{name}': {exc}") from None
    return aliases
