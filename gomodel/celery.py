import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "gomodel.settings")

app = Celery("gomodel")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


@app.on_after_configure.connect
def schedule_usage_tasks(sender, **kwargs):
    from django.conf import settings

    interval = settings.USAGE_FLUSH_INTERVAL
    sender.conf.beat_schedule = {
        # A run that could not start in time is dropped (`expires`): the next one drains everything.
        "usage-drain": {"task": "accounting.drain_usage", "schedule": interval,
                        "options": {"expires": max(interval * 2, 1.0)}},
        "budget-reconcile": {"task": "accounting.reconcile_budgets", "schedule": settings.BUDGET_RECONCILE_INTERVAL,
                             "options": {"expires": max(settings.BUDGET_RECONCILE_INTERVAL, 1.0)}},
        "usage-retention": {"task": "accounting.purge_usage_events", "schedule": 3600.0,
                            "options": {"expires": 1800.0}},
        "responses-retention": {"task": "accounting.purge_expired_responses", "schedule": 3600.0,
                                "options": {"expires": 1800.0}},
    }
