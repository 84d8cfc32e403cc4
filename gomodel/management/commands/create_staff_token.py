"""`manage.py create_staff_token USERNAME [--name N] [--days D]`: a management API token for a staff
user, printed once (alone, on the last line); only its hash is stored."""

import datetime

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from gomodel.api.tokens import default_expiry, issue_staff_token


class Command(BaseCommand):
    help = "Issue a management API token for a staff user (shown once; stored hashed; expires)."

    def add_arguments(self, parser):
        parser.add_argument("username")
        parser.add_argument("--name", default="")
        parser.add_argument("--days", type=int, default=None,
                            help="Valid for this many days (default STAFF_TOKEN_DAYS; 0: never expires).")

    def handle(self, username, name, days, **options):
        user = get_user_model().objects.filter(username=username).first()
        if user is None or not user.is_staff or not user.is_active:
            raise CommandError(f"{username!r} is not an active staff user.")
        if days is None:
            expires = default_expiry()
        else:
            expires = timezone.now() + datetime.timedelta(days=days) if days > 0 else None
        token, plaintext = issue_staff_token(user, name, expires_at=expires, actor="manage.py")
        self.stderr.write(f"token {token.prefix} for {username}, "
                          f"{'expires ' + token.expires_at.isoformat() if token.expires_at else 'never expires'}")
        self.stdout.write(plaintext)
