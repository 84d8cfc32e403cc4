from django.core.management.base import BaseCommand

from accounting.prices.defaults import load_default_prices


class Command(BaseCommand):
    help = "Add the bundled default model prices that are missing (rows edited in the admin are kept)."

    def handle(self, **options):
        added = load_default_prices()
        self.stdout.write(f"Added {added} default prices.")
