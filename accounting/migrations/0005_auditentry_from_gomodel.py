# AuditEntry moves from the gomodel app to accounting: the table (gomodel_auditentry) stays as it is;
# only Django's idea of which app owns it changes.

import django.core.serializers.json
import django.utils.timezone
from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ("accounting", "0004_tenant_monthly_budget"),
        ("gomodel", "0001_initial"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.CreateModel(
                    name="AuditEntry",
                    fields=[
                        ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False,
                                                   verbose_name="ID")),
                        ("actor", models.CharField(help_text='"master" or the staff user\'s username.',
                                                   max_length=150)),
                        ("action", models.CharField(max_length=32)),
                        ("object_type", models.CharField(max_length=64)),
                        ("object_id", models.CharField(blank=True, max_length=64)),
                        ("object_repr", models.CharField(blank=True, max_length=200)),
                        ("changes", models.JSONField(blank=True, default=dict,
                                                     encoder=django.core.serializers.json.DjangoJSONEncoder)),
                        ("created_at", models.DateTimeField(db_index=True, default=django.utils.timezone.now)),
                    ],
                    options={
                        "verbose_name": "audit entry",
                        "verbose_name_plural": "audit entries",
                        "ordering": ["-created_at", "-id"],
                        "db_table": "gomodel_auditentry",
                        "indexes": [models.Index(fields=["object_type", "object_id"],
                                                 name="gomodel_aud_object__5e0a3e_idx")],
                    },
                ),
            ],
            database_operations=[],
        ),
    ]
