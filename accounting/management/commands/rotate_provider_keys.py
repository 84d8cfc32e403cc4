from django.core.management.base import BaseCommand, CommandError

from accounting.provider_configs.services import do_rotate_provider_keys


class Command(BaseCommand):
    help = ("Re-encrypt every stored provider key with the newest of GOMODEL_ENCRYPTION_KEYS (run after putting "
            "a new key first; the old keys can then be dropped). Each key re-encrypted is audited.")

    def handle(self, **options):
        rotated, failed = do_rotate_provider_keys()
        self.stdout.write(f"Re-encrypted {rotated} provider key(s) with the newest encryption key.")
        if failed:
            raise CommandError(f"No configured encryption key decrypts the key of: {', '.join(failed)}. "
                               "Add the key they were stored with (after the newest) or enter them again.")
