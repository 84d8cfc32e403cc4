"""`manage.py serve`: the same as `make run` (gomodel/supervisor.py). This process replaces itself
with the supervisor, so that no copy of Django stays resident for the life of the stack."""

import os
import sys

from django.core.management.base import BaseCommand

from gomodel.supervisor import build_parser


class Command(BaseCommand):
    help = "Run Redis (if needed), migrations, the ASGI server and a Celery worker with beat, supervised."

    def add_arguments(self, parser):
        # The supervisor's own flags, with its help texts (gomodel/supervisor.py).
        for action in build_parser()._actions:
            if action.option_strings and action.dest != "help":
                kwargs = {"default": action.default, "help": action.help}
                if action.const is True:
                    kwargs["action"] = "store_true"
                else:
                    kwargs.update(type=action.type, choices=action.choices)
                parser.add_argument(*action.option_strings, **kwargs)

    def handle(self, server, workers, no_celery, **options):
        argv = [sys.executable, "-m", "gomodel.supervisor", "--server", server, "--workers", str(workers)]
        if no_celery:
            argv.append("--no-celery")
        sys.stdout.flush()
        sys.stderr.flush()
        os.execv(sys.executable, argv)
