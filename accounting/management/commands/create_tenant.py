from django.core.management.base import BaseCommand, CommandError
from django.utils.text import slugify

from accounting.models import Tenant
from accounting.tenants.services import do_create_tenant


class Command(BaseCommand):
    help = "Create a tenant."

    def add_arguments(self, parser):
        parser.add_argument("slug")
        parser.add_argument("--name", default="")

    def handle(self, slug, name, **options):
        if not slug or slugify(slug) != slug:
            raise CommandError(f"'{slug}' is not a valid slug (lowercase letters, digits, '-' and '_').")
        if Tenant.objects.filter(slug=slug).exists():
            raise CommandError(f"Tenant '{slug}' already exists.")
        tenant = do_create_tenant(slug, name)
        self.stdout.write(f"Created tenant {tenant.slug} (id {tenant.id}).")
