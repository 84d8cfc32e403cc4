import argparse

from django.core.management.base import BaseCommand, CommandError

from accounting.labels import LabelError, parse_labels
from accounting.limits.allowlists import AllowListError, validate_entries
from accounting.models import Tenant
from accounting.tenants.services import do_create_api_key


def limit(value):
    """A limit: a whole number from 1 (no flag: no limit)."""
    number = int(value)
    if number < 1 or number > 2**31 - 1:
        raise ValueError(value)
    return number


def allow_list(value):
    try:
        return validate_entries([part for part in value.split(",") if part.strip()])
    except AllowListError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def labels(value):
    try:
        return parse_labels(value, "--labels")
    except LabelError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


class Command(BaseCommand):
    help = "Issue an API key for a tenant. The plaintext is printed once, alone on the last line."

    def add_arguments(self, parser):
        parser.add_argument("tenant", help="Tenant slug.")
        parser.add_argument("--name", default="")
        parser.add_argument("--rpm", type=limit, default=None, help="Requests per minute limit.")
        parser.add_argument("--tpm", type=limit, default=None, help="Tokens per minute limit.")
        parser.add_argument("--concurrency", type=limit, default=None, help="Requests in flight at once.")
        parser.add_argument("--models", type=allow_list, default=None,
                            help="Allow-list, comma-separated: provider/model, provider/* or a virtual model.")
        parser.add_argument("--labels", type=labels, default=None,
                            help="Labels every request of the key carries, comma-separated: team:search,env:prod.")
        parser.add_argument("--cache", choices=["off", "exact", "semantic"], default=None,
                            help="Response cache of this key (default: its tenant's, which is off unless set).")
        parser.add_argument("--cache-ttl", type=limit, default=None,
                            help="Seconds a cached answer is kept (default: its tenant's, or RESPONSE_CACHE_TTL).")

    def handle(self, tenant, name, rpm, tpm, concurrency, models, cache=None, cache_ttl=None, labels=None,
               **options):
        try:
            tenant_row = Tenant.objects.get(slug=tenant)
        except Tenant.DoesNotExist:
            raise CommandError(f"No tenant '{tenant}'. Create it with: manage.py create_tenant {tenant}")
        extra = {"cache_mode": cache} if cache else {}
        if cache_ttl:
            extra["cache_ttl_seconds"] = cache_ttl
        key, plaintext = do_create_api_key(tenant_row, name=name, rpm=rpm, tpm=tpm, concurrency=concurrency,
                                           allowed_models=models, labels=labels, **extra)
        self.stderr.write(f"Created key {key.prefix} (id {key.id}) for {tenant_row.slug}. "
                          "Store it now: it cannot be shown again.")
        self.stdout.write(plaintext)
