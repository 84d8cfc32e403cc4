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
- A config's key pool: further keys are "Provider keys" rows (write-only, labelled, each encrypted like the
  config's own, which is the pool's "key-1"); a key the upstream rejected (401/403) is marked there, in the
  config list's "key pool" column and on the config's page, and is put back by "reinstate" (or by a new key).
  Env configs' keys (<P>_API_KEY_2, …) are shown read-only (reinstating them is allowed).
- A new base URL needs the key again in the same form: else whoever may edit the URL could send the
  stored key to a host of theirs. Every write goes through accounting.provider_configs.services (audited); every action
  needs the change permission.
(Here rather than in providers/: it calls the upstream and the domain services, which providers/ may not.)
"""

from typing import Any, cast

import orjson
from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html
from django.utils.safestring import mark_safe

from accounting.audit.admin import AuditedModelAdmin, actor
from accounting.audit.services import DomainError
from accounting.provider_configs import services
from gomodel.gateway.provider_probe import test_connection
from gomodel.gateway.quotas import current_use
from providers.catalogue import CATALOGUE, PROVIDER_CHOICES
from providers.models import PRIMARY_KEY_LABEL, ModelAlias, ProviderConfig, ProviderKey


def env_badge(source: str):
    if source == ProviderConfig.SOURCE_ENV:
        return format_html('<span class="gm-badge env" title="{}">environment</span>',
                           "Configured by environment variables; change it there (synced at every start).")
    return mark_safe('<span class="gm-badge">admin</span>')


# -- provider configs --------------------------------------------------------------------------------

class ProviderTypeSelect(forms.Select):
    """Carries each type's default base URL for the script that fills it in."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.attrs["data-default-base-urls"] = orjson.dumps(
            {key: spec.default_base_url for key, spec in CATALOGUE.items()}).decode()
        self.attrs["class"] = "gm-provider-type"


QUOTA_FIELDS = ["rpm_limit", "tpm_limit", "concurrency_limit", "model_quotas"]  # the provider account's quotas


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
        fields = ["name", "provider_type", "base_url", "api_key", "clear_api_key", "model_list", "enabled",
                  *QUOTA_FIELDS]

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
        cleaned = cast(dict[str, Any], super().clean())  # a ModelForm's clean() returns cleaned_data
        spec = CATALOGUE.get(cleaned.get("provider_type") or "")
        if spec and cleaned.get("base_url", "").rstrip("/") == spec.default_base_url.rstrip("/"):
            cleaned["base_url"] = ""
        if spec and spec.needs_base_url and not spec.default_base_url and not cleaned.get("base_url"):
            self.add_error("base_url", f"{spec.label} has no default base URL; set one.")
        keeps_key = bool(self.instance.api_key_encrypted) and not cleaned.get("clear_api_key")
        has_key = bool(cleaned.get("api_key")) or keeps_key
        if spec and spec.needs_key and not has_key:
            self.add_error("api_key", f"{spec.label} needs an API key.")
        if self.instance.pk is not None and spec and "base_url" in cleaned:
            stored = ProviderConfig.objects.get(pk=self.instance.pk)  # the row as stored, not as being edited
            try:
                services.check_provider_change(stored, cleaned["base_url"], cleaned.get("api_key"),
                                               bool(cleaned.get("clear_api_key")), spec.key)
            except DomainError as exc:
                for name, message in exc.errors.items():
                    self.add_error(name if name in self.fields else None, message)
        return cleaned


class ProviderKeyForm(forms.ModelForm):
    api_key = forms.CharField(
        required=False, strip=True, label="API key",
        widget=forms.PasswordInput(render_value=False, attrs={"autocomplete": "off"}),
        help_text="Write-only: stored encrypted, never shown again. Leave empty to keep the current key.")
    label = forms.SlugField(required=False, max_length=64, help_text="Names the key in usage, health and the "
                                                                     "audit trail. Empty: the next free 'key-N'.")
    reinstate = forms.BooleanField(required=False, label="Reinstate",
                                   help_text="Put a key the upstream rejected (401/403) back in the pool.")

    class Meta:
        model = ProviderKey
        # `label` is the form's own field, not the model's: empty is allowed here (the next free "key-N", chosen
        # by the domain service, which checks labels).
        fields = ["config", "api_key", "reinstate"]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if self.instance.pk is not None:
            self.initial.setdefault("label", self.instance.label)
        if "config" in self.fields:
            field = cast(forms.ModelChoiceField, self.fields["config"])
            field.queryset = ProviderConfig.objects.filter(source=ProviderConfig.SOURCE_ADMIN)
            field.help_text = ("An admin-made provider config (the environment's get theirs from "
                                               "<P>_API_KEY_2, _3, …).")

    def clean(self):
        cleaned = cast(dict[str, Any], super().clean())
        if self.instance.pk is None and not cleaned.get("api_key"):
            self.add_error("api_key", "A new key needs its value.")
        if cleaned.get("label") == PRIMARY_KEY_LABEL:
            self.add_error("label", f"'{PRIMARY_KEY_LABEL}' names the config's own key.")
        return cleaned


@admin.register(ProviderKey)
class ProviderKeyAdmin(AuditedModelAdmin):
    """A provider config's further keys (its own key is the pool's "key-1", on the config's page). Every write
    goes through the audited domain services; the key is write-only and shown redacted."""

    form = ProviderKeyForm
    list_display = ["__str__", "label", "api_key_redacted", "status", "origin", "updated_at"]
    list_filter = ["config", "source"]
    search_fields = ["label", "config__name"]
    actions = ["reinstate"]

    def get_fields(self, request, obj=None):
        if obj is None:
            return ["config", "label", "api_key"]
        if obj.source == ProviderConfig.SOURCE_ENV:
            return ["config", "label", "api_key_redacted", "status", "origin", "reinstate"]
        return ["config", "label", "api_key", "api_key_redacted", "status", "reinstate", "origin"]

    def get_readonly_fields(self, request, obj=None):
        if obj is None:
            return []
        if obj.source == ProviderConfig.SOURCE_ENV:
            return ["config", "label", "api_key_redacted", "status", "origin"]
        return ["config", "api_key_redacted", "status", "origin"]

    def has_delete_permission(self, request, obj=None):
        if obj is not None and obj.source == ProviderConfig.SOURCE_ENV:
            return False
        return super().has_delete_permission(request, obj)

    def save_model(self, request, obj, form, change):
        data = form.cleaned_data
        try:
            if change:
                saved = services.do_update_provider_key(actor(request), ProviderKey.objects.get(pk=obj.pk),
                                                        label=data.get("label") or None,
                                                        api_key=data.get("api_key") or "",
                                                        reinstate=bool(data.get("reinstate")))
            else:
                saved = services.do_add_provider_key(actor(request), data["config"], data["api_key"],
                                                     data.get("label") or "")
        except DomainError as exc:
            self.message_user(request, str(exc), messages.ERROR)
            return
        obj.pk = saved.pk

    def delete_model(self, request, obj):
        services.do_remove_provider_key(actor(request), obj)

    def delete_queryset(self, request, queryset):
        for key in queryset.exclude(source=ProviderConfig.SOURCE_ENV):
            services.do_remove_provider_key(actor(request), key)

    @admin.display(description="key")
    def api_key_redacted(self, obj):
        return obj.api_key_redacted

    @admin.display(description="status")
    def status(self, obj):
        return key_status(obj.rejected_at)

    @admin.display(description="source")
    def origin(self, obj):
        return env_badge(obj.source)

    @admin.action(description="Put the selected keys back in their pools", permissions=["change"])
    def reinstate(self, request, queryset):
        for key in queryset.exclude(rejected_at=None):
            services.do_update_provider_key(actor(request), key, reinstate=True)


def key_status(rejected_at):
    if rejected_at is None:
        return mark_safe('<span class="gm-badge">in the pool</span>')
    return format_html('<span class="gm-badge rejected" title="The upstream answered 401/403 to it">rejected {}'
                       '</span>', rejected_at.strftime("%Y-%m-%d %H:%M UTC"))


ENV_FIELDS = ["name", "provider_type", "effective_base_url", "api_key_redacted", "api_key_status", "key_pool",
              "model_list", "enabled", *QUOTA_FIELDS, "quota_use", "origin", "created_at", "updated_at"]


@admin.register(ProviderConfig)
class ProviderConfigAdmin(AuditedModelAdmin):
    form = ProviderConfigForm
    list_display = ["name", "provider_type", "effective_base_url", "api_key_redacted", "key_pool", "quotas", "enabled",
                    "origin", "updated_at"]
    list_filter = ["provider_type", "enabled", "source"]
    search_fields = ["name", "provider_type"]
    readonly_fields = ["origin", "api_key_redacted", "api_key_status", "key_pool", "quota_use", "created_at",
                       "updated_at"]
    actions = ["test_connection_action", "enable", "disable", "reinstate_keys"]

    change_form_template = "admin/providers/providerconfig/change_form.html"

    class Media:
        js = ["dashboard/provider_form.js"]

    def get_fields(self, request, obj=None):
        if obj is not None and obj.source == ProviderConfig.SOURCE_ENV:
            return ENV_FIELDS
        fields = ["name", "provider_type", "base_url", "api_key", "clear_api_key", "model_list", "enabled",
                  *QUOTA_FIELDS]
        if obj is None or not obj.api_key_encrypted:
            fields.remove("clear_api_key")  # no stored key to remove (it was offered on the add form)
        if obj is not None:
            fields[3:3] = ["api_key_redacted", "api_key_status", "key_pool"]
            fields += ["quota_use", "origin", "created_at", "updated_at"]
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

    def save_model(self, request, obj, form, change):
        data = {name: form.cleaned_data[name] for name in ("name", "provider_type", "base_url", "model_list",
                                                            "enabled", *QUOTA_FIELDS) if name in form.cleaned_data}
        data["api_key"] = form.cleaned_data.get("api_key") or ""
        if "model_quotas" in data:
            data["model_quotas"] = data["model_quotas"] or {}  # an empty field: no model quota
        if change:
            stored = ProviderConfig.objects.get(pk=obj.pk)
            saved = services.do_update_provider(actor(request), stored, data,
                                                clear_api_key=bool(form.cleaned_data.get("clear_api_key")))
        else:
            saved = services.do_create_provider(actor(request), data)
        obj.pk, obj.api_key_encrypted = saved.pk, saved.api_key_encrypted

    def get_changeform_initial_data(self, request):
        initial = super().get_changeform_initial_data(request)
        spec = CATALOGUE.get(cast(str, initial.get("provider_type") or ""))
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

    @admin.display(description=f"API key ({PRIMARY_KEY_LABEL}) status")
    def api_key_status(self, obj):
        return key_status(obj.api_key_rejected_at)

    @admin.display(description="quotas")
    def quotas(self, obj):
        """The quotas as configured (the list reads no counters; the config's page shows their use)."""
        quota = obj.quota
        if quota is None:
            return "—"
        parts = [f"{short} {value}" for short, value in (("RPM", quota.rpm), ("TPM", quota.tpm),
                                                          ("in flight", quota.concurrency)) if value is not None]
        if quota.models:
            parts.append(f"{len(quota.models)} model{'s' if len(quota.models) != 1 else ''}")
        return ", ".join(parts)

    @admin.display(description="quota use now")
    def quota_use(self, obj):
        """Each quota with what is left of it now, read from the shared Redis counters (consuming nothing)."""
        use = current_use(obj)
        rows = ([("provider", use["provider"])] if use["provider"] else []) + list(use["models"].items())
        if not rows:
            return "no quota"
        lines = []
        for name, report in rows:
            parts = []
            for dimension, short in (("requests", "RPM"), ("tokens", "TPM"), ("concurrency", "in flight")):
                entry = report[dimension]
                if entry["limit"] is not None:
                    left = "?" if entry["remaining"] is None else entry["limit"] - entry["remaining"]
                    parts.append(f"{short} {left}/{entry['limit']}")
            lines.append(format_html("{}: {}", name, ", ".join(parts)))
        return format_html("<br>".join(["{}"] * len(lines)), *lines)

    @admin.display(description="key pool")
    def key_pool(self, obj):
        """How many keys, and which the upstream rejected (by label, never the key); links to the further keys."""
        keys = list(obj.extra_keys.all())
        rejected = ([PRIMARY_KEY_LABEL] if obj.api_key_rejected_at else []) + [k.label for k in keys if k.rejected_at]
        count = len(keys) + bool(obj.api_key_encrypted)
        link = reverse("admin:providers_providerkey_changelist") + f"?config__id__exact={obj.pk}"
        text = format_html('<a href="{}">{} key{}</a>', link, count, "s" if count != 1 else "")
        if not rejected:
            return text
        return format_html('{}, <span class="gm-badge rejected">rejected: {}</span>', text, ", ".join(rejected))

    def get_queryset(self, request):
        return super().get_queryset(request).prefetch_related("extra_keys")

    @admin.action(description="Put rejected keys back in their pools", permissions=["change"])
    def reinstate_keys(self, request, queryset):
        count = 0
        for config in queryset:  # env configs' keys too: reinstating changes nothing the environment says
            if config.api_key_rejected_at is not None:
                services.do_reinstate_provider_key(actor(request), config)
                count += 1
            for key in config.extra_keys.exclude(rejected_at=None):
                services.do_update_provider_key(actor(request), key, reinstate=True)
                count += 1
        self.message_user(request, f"Put {count} key(s) back in their pools.", messages.SUCCESS)

    # -- test connection -------------------------------------------------------------------------
    def get_urls(self):
        return [path("<path:object_id>/test-connection/", self.admin_site.admin_view(self.test_connection_view),
                     name="providers_providerconfig_test_connection"), *super().get_urls()]

    def test_connection_view(self, request, object_id):
        config = get_object_or_404(ProviderConfig, pk=object_id)
        if not super().has_change_permission(request):  # model-wide: env rows can be tested too
            raise PermissionDenied
        result = test_connection(config) if request.method == "POST" else None
        context = {**self.admin_site.each_context(request), "title": f"Test connection: {config.name}",
                   "subtitle": None, "opts": self.opts, "original": config, "result": result,
                   "change_url": reverse("admin:providers_providerconfig_change", args=[config.pk])}
        return TemplateResponse(request, "admin/providers/providerconfig/test_connection.html", context)

    def has_test_permission(self, request):
        return super().has_change_permission(request)

    @admin.action(description="Test connection (list the upstream's models)", permissions=["test"])
    def test_connection_action(self, request, queryset):
        for config in queryset[:20]:
            result = test_connection(config)
            level = messages.SUCCESS if result.ok else messages.ERROR
            outcome = "OK" if result.ok else "failed"
            self.message_user(request, f"Connection to {config.name}: {outcome} — {result.summary()}", level)

    @admin.action(description="Enable selected providers", permissions=["change"])
    def enable(self, request, queryset):
        self._set_enabled(request, queryset, True)

    @admin.action(description="Disable selected providers", permissions=["change"])
    def disable(self, request, queryset):
        self._set_enabled(request, queryset, False)

    def _set_enabled(self, request, queryset, enabled: bool):
        changed = 0
        for config in queryset.exclude(enabled=enabled).exclude(source=ProviderConfig.SOURCE_ENV):
            services.do_set_provider_enabled(actor(request), config, enabled)  # the gateways reload their routes
            changed += 1
        skipped = queryset.filter(source=ProviderConfig.SOURCE_ENV).exclude(enabled=enabled).count()
        note = f" ({skipped} from the environment left as they are)" if skipped else ""
        self.message_user(request, f"{'Enabled' if enabled else 'Disabled'} {changed} provider(s){note}.",
                          messages.SUCCESS)


# -- model aliases -----------------------------------------------------------------------------------

@admin.register(ModelAlias)
class ModelAliasAdmin(AuditedModelAdmin):
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
