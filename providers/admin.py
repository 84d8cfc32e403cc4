"""Admin for provider configs and model aliases.

- The type is picked from the catalogue of the seed providers; its default base URL is filled in
  (on the form, by a small script, and from `?provider_type=` on the add page). A base URL equal to
  the default is stored empty, so the config follows the catalogue.
- The API key is write-only: a password field that never renders a value, stored Fernet-encrypted
  (providers/crypto.py), shown only redacted.
- "Test connection" (an action on the list, a button on the page) lists the upstream's models with
  the adapter's own `build_models_request`/`parse_models`, or shows the upstream's error.
- Configs and aliases from the environment are shown, marked, and read-only here: `make run` writes
  them again from the environment at every start.
"""

import time
from dataclasses import dataclass, field

import httpx
import orjson
from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html
from django.utils.safestring import mark_safe

from .adapters import adapter_for
from .base import Target, error_message, scrub_secrets
from .catalogue import CATALOGUE, PROVIDER_CHOICES
from .models import ModelAlias, ProviderConfig

TEST_TIMEOUT = httpx.Timeout(10.0, connect=5.0)
MODELS_SHOWN_IN_MESSAGES = 8


def env_badge(source: str):
    if source == ProviderConfig.SOURCE_ENV:
        return format_html('<span class="gm-badge env" title="{}">environment</span>',
                           "Configured by environment variables; change it there (synced at every start).")
    return mark_safe('<span class="gm-badge">admin</span>')


# -- test connection ---------------------------------------------------------------------------------

@dataclass
class ConnectionResult:
    ok: bool
    url: str
    status: int | None = None
    models: list[str] = field(default_factory=list)
    error: str = ""
    elapsed_ms: float = 0.0

    def summary(self) -> str:
        if self.ok:
            shown = ", ".join(self.models[:MODELS_SHOWN_IN_MESSAGES])
            more = f" and {len(self.models) - MODELS_SHOWN_IN_MESSAGES} more" if len(
                self.models) > MODELS_SHOWN_IN_MESSAGES else ""
            return f"{len(self.models)} models ({shown}{more}) in {self.elapsed_ms:.0f} ms"
        return f"{self.error}" + (f" (HTTP {self.status})" if self.status else "")


def test_connection(config: ProviderConfig, transport: httpx.BaseTransport | None = None) -> ConnectionResult:
    """GET the upstream's model list as the gateway would; never raises, never shows the key."""
    try:
        api_key = config.api_key
    except ValueError as exc:
        return ConnectionResult(False, "", error=str(exc))
    target = Target(id=config.pk or 0, name=config.name, provider_type=config.provider_type, wire=config.spec.wire,
                    base_url=config.effective_base_url, api_key=api_key, extra_models=tuple(config.extra_models))
    adapter = adapter_for(target.wire)
    request = adapter.build_models_request(target)
    result = ConnectionResult(False, request.url)
    started = time.perf_counter()
    try:
        with httpx.Client(timeout=TEST_TIMEOUT, transport=transport, trust_env=False) as client:
            response = client.request(request.method, request.url, headers=request.headers)
        result.status = response.status_code
        if response.status_code != 200:
            message, _, code = error_message(response.content, response.status_code, target)
            result.error = message + (f" [{code}]" if code else "")
        else:
            result.models = adapter.parse_models(response.content)
            result.ok = True
    except httpx.HTTPError as exc:
        result.error = f"{type(exc).__name__}: {exc or 'no answer'}"
    except (ValueError, TypeError, AttributeError, orjson.JSONDecodeError) as exc:
        result.error = f"the upstream's model list could not be read: {exc}"
    result.elapsed_ms = (time.perf_counter() - started) * 1000
    # An upstream or a transport error must not echo the key (or anything like one) into the page.
    result.error = scrub_secrets(result.error, api_key, target.base_url)
    return result


# -- provider configs --------------------------------------------------------------------------------

class ProviderTypeSelect(forms.Select):
    """Carries each type's default base URL for the script that fills it in."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.attrs["data-default-base-urls"] = orjson.dumps(
            {key: spec.default_base_url for key, spec in CATALOGUE.items()}).decode()
        self.attrs["class"] = "gm-provider-type"


class ProviderConfigForm(forms.ModelForm):
    provider_type = forms.ChoiceField(choices=[("", "---------"), *PROVIDER_CHOICES], widget=ProviderTypeSelect,
                                      help_text="One of the seed providers; picks the wire format and defaults.")
    base_url = forms.URLField(required=False, assume_scheme="https", max_length=500, label="Base URL",
                              help_text="Filled in with the type's default; a URL equal to the default is stored "
                                        "empty, so the config follows the catalogue.")
    api_key = forms.CharField(
        required=False, strip=True, label="API key",
        widget=forms.PasswordInput(render_value=False, attrs={"autocomplete": "off"}),
        help_text="Write-only: stored encrypted, never shown again. Leave empty to keep the current key.",
    )
    clear_api_key = forms.BooleanField(required=False, label="Remove the stored key",
                                       help_text="For upstreams that need no key (e.g. a local Ollama).")

    class Meta:
        model = ProviderConfig
        fields = ["name", "provider_type", "base_url", "api_key", "clear_api_key", "model_list", "enabled"]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        instance = self.instance
        if instance.pk and not instance.base_url and instance.provider_type in CATALOGUE:
            self.initial["base_url"] = CATALOGUE[instance.provider_type].default_base_url
        if "base_url" in self.fields:
            self.fields["base_url"].widget.attrs["class"] = "vURLField gm-base-url"
        if "model_list" in self.fields:
            self.fields["model_list"].help_text = ("Extra model ids, comma separated (as the PREFIX_MODELS environment "
                                                   "variable), added to what the upstream lists.")

    def clean(self):
        cleaned = super().clean()
        spec = CATALOGUE.get(cleaned.get("provider_type") or "")
        if spec and cleaned.get("base_url", "").rstrip("/") == spec.default_base_url.rstrip("/"):
            cleaned["base_url"] = ""
        if spec and spec.needs_base_url and not spec.default_base_url and not cleaned.get("base_url"):
            self.add_error("base_url", f"{spec.label} has no default base URL; set one.")
        keeps_key = bool(self.instance.api_key_encrypted) and not cleaned.get("clear_api_key")
        has_key = bool(cleaned.get("api_key")) or keeps_key
        if spec and spec.needs_key and not has_key:
            self.add_error("api_key", f"{spec.label} needs an API key.")
        return cleaned

    def save(self, commit=True):
        config = super().save(commit=False)
        if self.cleaned_data.get("api_key"):
            config.set_api_key(self.cleaned_data["api_key"])
        elif self.cleaned_data.get("clear_api_key"):
            config.api_key_encrypted = ""
        if commit:
            config.save()
        return config


ENV_FIELDS = ["name", "provider_type", "effective_base_url", "api_key_redacted", "model_list", "enabled", "origin",
              "created_at", "updated_at"]


@admin.register(ProviderConfig)
class ProviderConfigAdmin(admin.ModelAdmin):
    form = ProviderConfigForm
    list_display = ["name", "provider_type", "effective_base_url", "api_key_redacted", "enabled", "origin",
                    "updated_at"]
    list_filter = ["provider_type", "enabled", "source"]
    search_fields = ["name", "provider_type"]
    readonly_fields = ["origin", "api_key_redacted", "created_at", "updated_at"]
    actions = ["test_connection_action", "enable", "disable"]
    change_form_template = "admin/providers/providerconfig/change_form.html"

    class Media:
        js = ["dashboard/provider_form.js"]

    def get_fields(self, request, obj=None):
        if obj is not None and obj.source == ProviderConfig.SOURCE_ENV:
            return ENV_FIELDS
        fields = ["name", "provider_type", "base_url", "api_key", "clear_api_key", "model_list", "enabled"]
        if obj is not None:
            fields[3:3] = ["api_key_redacted"]
            fields += ["origin", "created_at", "updated_at"]
        return fields

    def get_readonly_fields(self, request, obj=None):
        if obj is not None and obj.source == ProviderConfig.SOURCE_ENV:
            return ENV_FIELDS  # never "api_key": that would render the decrypted key
        return self.readonly_fields

    def has_change_permission(self, request, obj=None):
        if obj is not None and obj.source == ProviderConfig.SOURCE_ENV:
            return False  # view only: the environment is where it is changed
        return super().has_change_permission(request, obj)

    def has_delete_permission(self, request, obj=None):
        if obj is not None and obj.source == ProviderConfig.SOURCE_ENV:
            return False
        return super().has_delete_permission(request, obj)

    def get_changeform_initial_data(self, request):
        initial = super().get_changeform_initial_data(request)
        spec = CATALOGUE.get(initial.get("provider_type") or "")
        if spec:
            initial.setdefault("base_url", spec.default_base_url)
            initial.setdefault("name", spec.key)
        return initial

    @admin.display(description="source", ordering="source")
    def origin(self, obj):
        return env_badge(obj.source)

    @admin.display(description="API key")
    def api_key_redacted(self, obj):
        return obj.api_key_redacted or "—"

    @admin.display(description="base URL")
    def effective_base_url(self, obj):
        return obj.effective_base_url

    # -- test connection -------------------------------------------------------------------------
    def get_urls(self):
        return [path("<path:object_id>/test-connection/", self.admin_site.admin_view(self.test_connection_view),
                     name="providers_providerconfig_test_connection"), *super().get_urls()]

    def test_connection_view(self, request, object_id):
        config = get_object_or_404(ProviderConfig, pk=object_id)
        if not self.has_view_permission(request, config):
            raise PermissionDenied
        result = test_connection(config) if request.method == "POST" else None
        context = {**self.admin_site.each_context(request), "title": f"Test connection: {config.name}",
                   "subtitle": None, "opts": self.opts, "original": config, "result": result,
                   "change_url": reverse("admin:providers_providerconfig_change", args=[config.pk])}
        return TemplateResponse(request, "admin/providers/providerconfig/test_connection.html", context)

    @admin.action(description="Test connection (list the upstream's models)")
    def test_connection_action(self, request, queryset):
        for config in queryset[:20]:
            result = test_connection(config)
            level = messages.SUCCESS if result.ok else messages.ERROR
            outcome = "OK" if result.ok else "failed"
            self.message_user(request, f"Connection to {config.name}: {outcome} — {result.summary()}", level)

    @admin.action(description="Enable selected providers")
    def enable(self, request, queryset):
        self._set_enabled(request, queryset, True)

    @admin.action(description="Disable selected providers")
    def disable(self, request, queryset):
        self._set_enabled(request, queryset, False)

    def _set_enabled(self, request, queryset, enabled: bool):
        changed = 0
        for config in queryset.exclude(enabled=enabled):
            config.enabled = enabled
            config.save(update_fields=["enabled", "updated_at"])  # save(): the gateways reload their routes
            changed += 1
        self.message_user(request, f"{'Enabled' if enabled else 'Disabled'} {changed} provider(s).", messages.SUCCESS)


# -- model aliases -----------------------------------------------------------------------------------

@admin.register(ModelAlias)
class ModelAliasAdmin(admin.ModelAdmin):
    list_display = ["name", "targets_display", "enabled", "origin", "updated_at"]
    list_filter = ["enabled", "source"]
    search_fields = ["name"]
    readonly_fields = ["origin", "updated_at"]

    def get_fields(self, request, obj=None):
        return ["name", "targets", "enabled", "origin", "updated_at"]

    def has_change_permission(self, request, obj=None):
        if obj is not None and obj.source == "env":
            return False  # VIRTUAL_MODELS: view only, changed in the environment
        return super().has_change_permission(request, obj)

    def has_delete_permission(self, request, obj=None):
        if obj is not None and obj.source == "env":
            return False
        return super().has_delete_permission(request, obj)

    @admin.display(description="source", ordering="source")
    def origin(self, obj):
        return env_badge(obj.source)

    @admin.display(description="targets")
    def targets_display(self, obj):
        try:
            return ", ".join(f"{t['target']} ×{t['weight']}" for t in obj.targets)
        except (TypeError, KeyError):
            return str(obj.targets)
