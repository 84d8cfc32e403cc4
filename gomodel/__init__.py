# The Celery app is loaded on first use, not with the package: the web worker never sends a task, and
# the `make run` supervisor (gomodel.supervisor) must stay free of Celery and Django. The worker names
# it itself (`celery -A gomodel.celery:app`).


def __getattr__(name):
    if name == "celery_app":
        from .celery import app

        return app
    raise AttributeError(name)


__all__ = ("celery_app",)
