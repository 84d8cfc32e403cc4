from django.core.management.base import BaseCommand

from accounting.provider_configs.services import do_sync_env_aliases, do_sync_env_providers


class Command(BaseCommand):
    help = "Upsert the providers configured in the environment into ProviderConfig rows (each change audited)."

    def add_arguments(self, parser):
        parser.add_argument("--replace-undecryptable", action="store_true",
                            help="Overwrite stored env provider keys that the configured encryption keys "
                                 "cannot decrypt (by default they are left alone and logged).")

    def handle(self, **options):
        synced = do_sync_env_providers(replace_undecryptable=options["replace_undecryptable"])
        names = ", ".join(c.name for c in synced) or "none"
        self.stdout.write(f"Providers from the environment: {names}.")
        aliases = ", ".join(a.name for a in do_sync_env_aliases()) or "none"
        self.stdout.write(f"Virtual models from the environment: {aliases}.")
