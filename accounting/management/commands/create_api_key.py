from django.core.management.base import BaseCommand, CommandError

from accounting.models import Tenant
from accounting.services import do_create_api_key


def positive_int(value):
    number = int(value)
    if number <= 0:
        raise ValueError(value)
    return number


class Command(BaseCommand):
    help = "Issue an API key for a tenant. The plaintext is printed once, alone on the last line."

    def add_arguments(self, parser):
        parser.add_argument("tenant", help="Tenant slug.")
        parser.add_argument("--name", default="")
        parser.add_argument("--rpm", type=positive_int, default=None, help="Requests per minute limit.")
        parser.add_argument("--tpm", type=positive_int, default=None, help="Tokens per minute limit.")

    def handle(self, tenant, name, rpm, tpm, **options):
        try:
            tenant_row = Tenant.objects.get(slug=tenant)
        except Tenant.DoesNotExist:
            raise CommandError(f"No tenant '{tenant}'. Create it with: manage.py create_tenant {tenant}")
        key, plaintext = do_create_api_key(tenant_row, name=name, rpm=rpm, tpm=tpm)
        self.stderr.write(f"Created key {key.prefix} (id {key.id}) for {tenant_row.slug}. "
                          "Store it now: it cannot be shown again.")
        self.stdout.write(plaintext)
