"""The example project wiring the demo shop to django-arc."""

from importlib.util import find_spec

# The events engineer provides ``example/celery.py``; load it (so ``@shared_task`` binds to
# the project's app) only when it exists and Celery is installed.
if find_spec("celery") is not None and find_spec("example.celery") is not None:
    from .celery import app as celery_app  # noqa: F401

    __all__ = ["celery_app"]
