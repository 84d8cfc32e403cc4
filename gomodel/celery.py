import os
import warnings

from celery import Celery
from celery.exceptions import SecurityWarning

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "gomodel.settings")
if os.environ.get("GOMODEL_ROOT_NOTICE_GIVEN") == "1":
    # `make run` as root said so once (gomodel/supervisor.py); not again at every start of the worker.
    warnings.filterwarnings("ignore", category=SecurityWarning, message=r"(?s).*superuser privileges")

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
        "batch-poll": {"task": "accounting.poll_batches", "schedule": settings.BATCH_POLL_INTERVAL,
                       "options": {"expires": max(settings.BATCH_POLL_INTERVAL, 1.0)}},
    }


if os.environ.get("GOMODEL_CELERY_THREADED_BEAT") == "1":
    from celery import bootsteps

    class ThreadedBeat(bootsteps.StartStopStep):
        """Beat as a thread of the worker, not `-B`'s extra process (which holds a second copy of Django)."""

        label = "ThreadedBeat"

        def create(self, worker):
            from celery.beat import EmbeddedService

            # the base class starts and stops what create() returns, with the worker
            return EmbeddedService(worker.app, thread=True, schedule_filename=worker.schedule_filename,
                                   scheduler_cls=worker.scheduler)

    app.steps["worker"].add(ThreadedBeat)
