# Staff API tokens, hashed (#19): DRF's authtoken kept them in plain text. Existing authtoken tokens move
# over as hashes (they keep working until STAFF_TOKEN_DAYS from now) and their plain text is deleted.

import datetime
import hashlib
import os

import django.db.models.deletion
import django.utils.timezone
from django.conf import settings
from django.db import migrations, models


def move_authtoken_tokens(apps, schema_editor):
    connection = schema_editor.connection
    if "authtoken_token" not in connection.introspection.table_names():
        return
    StaffToken = apps.get_model("gomodel", "StaffToken")
    days = int(os.environ.get("STAFF_TOKEN_DAYS") or 90)
    expires = django.utils.timezone.now() + datetime.timedelta(days=days) if days > 0 else None
    with connection.cursor() as cursor:
        cursor.execute("SELECT key, user_id, created FROM authtoken_token")
        rows = cursor.fetchall()
    for key, user_id, created in rows:
        StaffToken.objects.get_or_create(
            key_hash=hashlib.sha256(key.encode()).hexdigest(),
            defaults={"user_id": user_id, "name": "moved from authtoken", "prefix": f"{key[:4]}…{key[-4:]}",
                      "created_at": created, "expires_at": expires})
    with connection.cursor() as cursor:
        cursor.execute("DELETE FROM authtoken_token")


class Migration(migrations.Migration):

    dependencies = [
        ("gomodel", "0002_auditentry_to_accounting"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.CreateModel(
            name="StaffToken",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("name", models.CharField(blank=True, help_text="What it is for (a script, a CI job).", max_length=100)),
                ("key_hash", models.CharField(editable=False, max_length=64, unique=True)),
                ("prefix", models.CharField(editable=False, help_text="Its first and last characters.", max_length=32)),
                ("created_at", models.DateTimeField(default=django.utils.timezone.now, editable=False)),
                ("expires_at", models.DateTimeField(blank=True, help_text="Empty: never (not recommended).", null=True)),
                ("last_used_at", models.DateTimeField(blank=True, editable=False, null=True)),
                ("revoked_at", models.DateTimeField(blank=True, editable=False, null=True)),
                ("user", models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name="staff_tokens",
                                           to=settings.AUTH_USER_MODEL)),
            ],
            options={"ordering": ["-created_at"], "verbose_name": "staff API token"},
        ),
        migrations.RunPython(move_authtoken_tokens, migrations.RunPython.noop),
    ]
