from django.core.management.base import BaseCommand, CommandError
from django.db import transaction

from providers import crypto
from providers.models import ProviderConfig


class Command(BaseCommand):
    help = ("Re-encrypt every stored provider key with the newest of GOMODEL_ENCRYPTION_KEYS (run after putting "
            "a new key first; the old keys can then be dropped).")

    def handle(self, **options):
        rotated, failed = 0, []
        with transaction.atomic():
            for config in ProviderConfig.objects.exclude(api_key_encrypted="").select_for_update():
                try:
                    config.api_key_encrypted = crypto.rotate(config.api_key_encrypted)
                except ValueError:
                    failed.append(config.name)
                    continue
                config.save(update_fields=["api_key_encrypted", "updated_at"])
                rotated += 1
        self.stdout.write(f"Re-encrypted {rotated} provider key(s) with the newest encryption key.")
        if failed:
            raise CommandError(f"No configured encryption key decrypts the key of: {', '.join(failed)}. "
                               "Add the key they were stored with (after the newest) or enter them again.")
