"""Query-string filters of the management API's lists (django-filter: a bad value is a 400)."""

import datetime

import django_filters as filters
from django import forms
from django.core.exceptions import ValidationError
from django.db.models import Q

from accounting.models import ApiKey, AuditEntry, ModelPrice, Tenant
from providers.catalogue import PROVIDER_CHOICES
from providers.models import ProviderConfig


class StrictBooleanField(forms.NullBooleanField):
    """true/false (1/0, yes/no); anything else is a 400, not silently "no filter"."""

    widget = forms.TextInput  # NullBooleanSelect would turn "maybe" into None before validation

    def to_python(self, value):
        if value in (None, ""):
            return None
        text = str(value).strip().lower()
        if text in ("true", "1", "yes"):
            return True
        if text in ("false", "0", "no"):
            return False
        raise ValidationError("Must be a valid boolean (true or false).")

    def validate(self, value):
        pass


class StrictBooleanFilter(filters.BooleanFilter):
    field_class = StrictBooleanField


class UTCDateTimeField(forms.DateTimeField):
    """Any offset Python reads (up to ±24 h) as UTC: PostgreSQL refuses offsets beyond ±15:59."""

    def to_python(self, value):
        moment = super().to_python(value)
        if moment is None:
            return None
        try:
            return moment.astimezone(datetime.UTC)
        except OverflowError:
            raise ValidationError("Enter a date and time within the supported range.") from None


class UTCDateTimeFilter(filters.DateTimeFilter):
    field_class = UTCDateTimeField


class CreatedRange(filters.FilterSet):
    created_after = UTCDateTimeFilter(field_name="created_at", lookup_expr="gte",
                                              help_text="Created at or after (ISO 8601).")
    created_before = UTCDateTimeFilter(field_name="created_at", lookup_expr="lt",
                                               help_text="Created before (ISO 8601).")

    def is_valid(self):
        valid = super().is_valid()
        data = getattr(self.form, "cleaned_data", {})
        after, before = data.get("created_after"), data.get("created_before")
        if valid and after and before and after > before:
            self.form.add_error("created_before", "Must not be earlier than created_after.")
            return False
        return valid


class TenantFilter(CreatedRange):
    active = StrictBooleanFilter()
    search = filters.CharFilter(method="search_slug_or_name", max_length=200, help_text="Part of the slug or name.")

    class Meta:
        model = Tenant
        fields = ["active"]

    def search_slug_or_name(self, queryset, name, value):
        return queryset.filter(Q(slug__icontains=value) | Q(name__icontains=value))


class TenantRefFilter(filters.CharFilter):
    """A tenant by id or by slug (a CI script knows the slug)."""

    def filter(self, qs, value):
        if value in (None, ""):
            return qs
        if value.isdigit():
            return qs.filter(tenant_id=int(value)) if len(value) <= 18 else qs.none()
        return qs.filter(tenant__slug=value)


class ApiKeyFilter(CreatedRange):
    tenant = TenantRefFilter(max_length=64, help_text="Tenant id or slug.")
    tenant_slug = filters.CharFilter(field_name="tenant__slug", max_length=64)
    active = StrictBooleanFilter()

    class Meta:
        model = ApiKey
        fields = ["active"]


class TenantKeyFilter(CreatedRange):
    active = StrictBooleanFilter()

    class Meta:
        model = ApiKey
        fields = ["active"]


class ProviderFilter(filters.FilterSet):
    provider_type = filters.ChoiceFilter(choices=PROVIDER_CHOICES)
    enabled = StrictBooleanFilter()

    class Meta:
        model = ProviderConfig
        fields = ["provider_type", "enabled", "source"]


class PriceFilter(filters.FilterSet):
    search = filters.CharFilter(field_name="model_pattern", lookup_expr="icontains", max_length=255,
                                help_text="Part of the model pattern.")

    class Meta:
        model = ModelPrice
        fields = ["provider", "model_pattern"]


class AuditFilter(CreatedRange):
    class Meta:
        model = AuditEntry
        fields = ["actor", "action", "object_type", "object_id"]
