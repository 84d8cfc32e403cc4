from django.core.management.base import BaseCommand, CommandError

from accounting.usage.drain import drain


class Command(BaseCommand):
    help = ("Drain the usage stream now (what the Celery beat task does every USAGE_FLUSH_INTERVAL seconds): "
            "store new events, add them to the daily roll-ups, acknowledge them.")

    def add_arguments(self, parser):
        parser.add_argument("--claim-idle-ms", type=int, default=None,
                            help="Reclaim entries pending this long on another consumer (default "
                                 "USAGE_CLAIM_IDLE_MS).")
        parser.add_argument("--max-seconds", type=float, default=None,
                            help="Stop after this long even if events remain (default USAGE_DRAIN_MAX_SECONDS).")

    def handle(self, claim_idle_ms, max_seconds, **options):
        result = drain(claim_idle_ms=claim_idle_ms, max_seconds=max_seconds)
        if result.skipped:
            raise CommandError("Another drain holds the lock; try again in a moment.")
        self.stdout.write(
            f"Drained {result.read} entries in {result.batches} batches: {result.inserted} new events, "
            f"{result.duplicates} already stored, {result.reclaimed} reclaimed, {result.dead} dead-lettered, "
            f"{result.replayed} replayed from the spool.")
