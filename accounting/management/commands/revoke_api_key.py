from django.core.management.base import BaseCommand, CommandError

from accounting.models import ApiKey
from accounting.tenants.services import do_revoke_api_key


class Command(BaseCommand):
    help = "Revoke an API key by its id or its display prefix (e.g. sk_gom_…abcd)."

    def add_arguments(self, parser):
        parser.add_argument("key", help="Key id or display prefix.")

    def handle(self, key, **options):
        if key.isdigit():
            matches = list(ApiKey.objects.filter(id=int(key)))
        else:
            matches = list(ApiKey.objects.filter(prefix=key.replace("...", "…")))
        if not matches:
            raise CommandError(f"No API key matches '{key}'.")
        if len(matches) > 1:
            ids = ", ".join(str(k.id) for k in matches)
            raise CommandError(f"'{key}' matches several keys (ids {ids}); revoke by id.")
        revoked = do_revoke_api_key(matches[0])
        self.stdout.write(f"Revoked {revoked.prefix} (id {revoked.id}).")
