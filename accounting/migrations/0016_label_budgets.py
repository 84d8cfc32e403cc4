import django.db.models
from django.db import migrations

import accounting.labels


class Migration(migrations.Migration):

    dependencies = [
        ('accounting', '0015_unit_prices'),
    ]

    operations = [
        migrations.AddField(
            model_name='tenant',
            name='label_budgets',
            field=django.db.models.JSONField(
                blank=True, default=dict, validators=[accounting.labels.validate_label_budgets],
                help_text="Spend limits per request label, all the tenant's keys together: {\"team:search\": "
                          "{\"usd\": \"200\", \"period\": \"monthly\"}} (period: daily, weekly or monthly; at most "
                          "64 labels). Enforced like the tenant's budget: 429 budget_exceeded, streams cut."),
        ),
    ]
