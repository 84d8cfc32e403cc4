"""The admin's side of rate limits and allow-lists: an allow-list edited as text lines, and the current
usage of a key's and its tenant's limits shown beside them (read from Redis, consuming nothing)."""

from django import forms
from django.conf import settings
from django.utils.html import format_html, format_html_join

from .allowlists import AllowListError, parse_lines
from .ratelimits import DIMENSIONS, current_usage, key_scope, tenant_scope

ALLOW_LIST_HELP = ("One a line: 'provider/model', 'provider/*' (every model of that provider config) or a virtual "
                   "model name. Empty: no restriction.")


class AllowListField(forms.CharField):
    widget = forms.Textarea(attrs={"rows": 4, "cols": 60})

    def __init__(self, **kwargs):
        kwargs.setdefault("required", False)
        kwargs.setdefault("help_text", ALLOW_LIST_HELP)
        super().__init__(**kwargs)

    def prepare_value(self, value):
        return "\n".join(value) if isinstance(value, list) else value

    def to_python(self, value):
        try:
            return parse_lines(value or "")
        except AllowListError as exc:
            raise forms.ValidationError(str(exc)) from None


class LimitsForm(forms.ModelForm):
    allowed_models = AllowListField()


def _row(label: str, entry: dict | None):
    if entry is None or entry["limit"] is None:
        return (label, "no limit", "")
    if entry["remaining"] is None:
        return (label, f"limit {entry['limit']}", "usage unknown (Redis did not answer)")
    used = entry["limit"] - entry["remaining"]
    reset = f"; full again in {entry['reset_seconds']:g} s" if entry.get("reset_seconds") else ""
    return (label, f"{used} of {entry['limit']} used", f"{entry['remaining']} left{reset}")


def usage_table(report: dict | None):
    names = {"requests": "requests / minute", "tokens": "tokens / minute", "concurrency": "in flight"}
    rows = [_row(names[d], (report or {}).get(d)) for d in DIMENSIONS]
    return format_html('<table class="gm-limits">{}</table>',
                       format_html_join("", "<tr><th>{}</th><td>{}</td><td>{}</td></tr>", rows))


def key_limits_usage(key):
    tenant = key.tenant
    key_report, tenant_report = current_usage([
        key_scope(settings.LIMITS_PREFIX, tenant.id, key.id, key.rpm_limit, key.tpm_limit, key.concurrency_limit),
        tenant_scope(settings.LIMITS_PREFIX, tenant.id, tenant.rpm_limit, tenant.tpm_limit,
                     tenant.concurrency_limit)])
    return format_html("<p>This key</p>{}<p>Its tenant (all keys)</p>{}", usage_table(key_report),
                       usage_table(tenant_report))


def tenant_limits_usage(tenant):
    (report,) = current_usage([tenant_scope(settings.LIMITS_PREFIX, tenant.id, tenant.rpm_limit, tenant.tpm_limit,
                                            tenant.concurrency_limit)])
    return usage_table(report)
