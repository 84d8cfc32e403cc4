from django import forms
from django.contrib import admin

from .catalogue import CATALOGUE
from .models import ModelAlias, ProviderConfig


class ProviderConfigForm(forms.ModelForm):
    base_url = forms.URLField(required=False, assume_scheme="https", max_length=500,
                              help_text="Empty: the catalogue default for the provider type.")
    api_key = forms.CharField(
        required=False, widget=forms.PasswordInput(render_value=False),
        help_text="Write-only: stored encrypted, never shown. Leave empty to keep the current key.",
    )

    class Meta:
        model = ProviderConfig
        fields = ["name", "provider_type", "base_url", "api_key", "model_list", "enabled"]

    def clean(self):
        cleaned = super().clean()
        spec = CATALOGUE.get(cleaned.get("provider_type") or "")
        has_key = bool(cleaned.get("api_key")) or bool(self.instance.api_key_encrypted)
        if spec and spec.needs_key and not has_key:
            self.add_error("api_key", f"{spec.label} needs an API key.")
        return cleaned

    def save(self, commit=True):
        config = super().save(commit=False)
        if self.cleaned_data.get("api_key"):
            config.set_api_key(self.cleaned_data["api_key"])
        if commit:
            config.save()
        return config


@admin.register(ProviderConfig)
class ProviderConfigAdmin(admin.ModelAdmin):
    form = ProviderConfigForm
    list_display = ["name", "provider_type", "effective_base_url", "api_key_redacted", "enabled", "source",
                    "updated_at"]
    list_filter = ["provider_type", "enabled", "source"]
    search_fields = ["name"]
    readonly_fields = ["source", "api_key_redacted", "created_at", "updated_at"]


@admin.register(ModelAlias)
class ModelAliasAdmin(admin.ModelAdmin):
    list_display = ["name", "targets", "enabled", "source", "updated_at"]
    list_filter = ["enabled", "source"]
    search_fields = ["name"]
    readonly_fields = ["source", "updated_at"]
