# AuditEntry now belongs to accounting (accounting/migrations/0005_auditentry_from_gomodel); its table stays.

from django.db import migrations


class Migration(migrations.Migration):

    dependencies = [
        ("gomodel", "0001_initial"),
        ("accounting", "0005_auditentry_from_gomodel"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[migrations.DeleteModel(name="AuditEntry")],
            database_operations=[],
        ),
    ]
