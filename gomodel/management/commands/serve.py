"""`manage.py serve`: the same as `make run` (gomodel/supervisor.py). This process replaces itself
with the supervisor, so that no copy of Django stays resident for the life of the stack."""

import os
import sys

from django.core.management.base import BaseCommand

from gomodel.supervisor import SERVERS


class Command(BaseCommand):
    help = "Run Redis (if needed), migrations, the ASGI server and a Celery worker with beat, supervised."

    def add_arguments(self, parser):
        parser.add_argument("--server", choices=SERVERS, default=os.environ.get("GOMODEL_SERVER", "uvicorn"))
        parser.add_argument("--workers", type=int,
                            default=int(os.environ.get("WEB_CONCURRENCY") or os.cpu_count() or 1))
        parser.add_argument("--no-celery", action="store_true", help="Do not start the Celery worker.")

    def handle(self, server, workers, no_celery, **options):
        argv = [sys.executable, "-m", "gomodel.supervisor", "--server", server, "--workers", str(workers)]
        if no_celery:
            argv.append("--no-celery")
        sys.stdout.flush()
        sys.stderr.flush()
        os.execv(sys.executable, argv)
