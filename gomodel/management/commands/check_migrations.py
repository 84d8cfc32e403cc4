"""`manage.py check_migrations`: exit 0 when every migration is applied, 3 (listing them) when some are
not, 4 when the database does not answer. The web and worker roles of the image wait on it
(gomodel/roles.py): they never migrate themselves, the migrate role does, once per deployment."""

import sys

from django.core.management.base import BaseCommand
from django.db import DEFAULT_DB_ALIAS, connections
from django.db.migrations.executor import MigrationExecutor
from django.db.utils import OperationalError

PENDING, DATABASE_DOWN = 3, 4


class Command(BaseCommand):
    help = "Exit 0 if every migration is applied, 3 (and list them) if not, 4 if the database does not answer."
    requires_system_checks = []

    def handle(self, **options):
        connection = connections[DEFAULT_DB_ALIAS]
        try:
            connection.ensure_connection()
            executor = MigrationExecutor(connection)
            plan = executor.migration_plan(executor.loader.graph.leaf_nodes())
        except OperationalError as exc:
            self.stderr.write(f"database unreachable: {exc}".strip())
            sys.exit(DATABASE_DOWN)
        finally:
            connection.close()
        if plan:
            for migration, _backwards in plan:
                self.stdout.write(f"{migration.app_label}.{migration.name}")
            sys.exit(PENDING)
