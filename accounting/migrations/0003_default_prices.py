from django.db import migrations


def load(apps, schema_editor):
    from accounting.prices.defaults import load_default_prices

    load_default_prices(apps.get_model("accounting", "ModelPrice"))


class Migration(migrations.Migration):
    dependencies = [("accounting", "0002_usage_prices")]

    operations = [migrations.RunPython(load, migrations.RunPython.noop)]
