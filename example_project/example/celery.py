"""The example project's Celery app: runs ``django_arc.tasks.relay_outbox`` (and the outbox's
and idempotency keys' purges) on a beat schedule (``../crontab`` is its cron twin for the
purges, for a project that runs ``manage.py arc_relay`` rather than Celery).

Start a worker with an embedded beat (development only)::

    cd example_project && celery -A example worker -B -l info

Broker: ``CELERY_BROKER_URL``, else ``ARC_REDIS_URL`` (what ``scripts/services.sh`` exports),
else a local Redis on the default port.
"""

from __future__ import annotations

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "example.settings")

BROKER_URL = (
    os.environ.get("CELERY_BROKER_URL")
    or os.environ.get("ARC_REDIS_URL")
    or "redis://127.0.0.1:6379/0"
)

# --8<-- [start:beat-schedule]
BEAT_SCHEDULE = {
    # relay the outbox every second (or run `manage.py arc_relay` instead); a tick that
    # waited in the queue longer than 10 s (workers busy, a database outage) is discarded:
    # the ticks after it do its work
    "arc-relay-outbox": {
        "task": "django_arc.relay_outbox",
        "schedule": 1.0,
        "options": {"expires": 10},
    },
    # delivered events older than ARC["OUTBOX"]["DELIVERED_RETENTION_DAYS"], hourly
    "arc-purge-outbox": {"task": "django_arc.purge_outbox", "schedule": 3600.0},
    # the shop's idempotency keys live in the database store: expired ones go hourly
    "arc-purge-idempotency": {"task": "django_arc.purge_idempotency", "schedule": 3600.0},
}
# --8<-- [end:beat-schedule]

app = Celery("example")
# CELERY_* Django settings configure everything not set explicitly below.
app.config_from_object("django.conf:settings", namespace="CELERY")
app.conf.update(
    broker_url=BROKER_URL,
    result_backend=os.environ.get("CELERY_RESULT_BACKEND") or None,
    task_ignore_result=True,
    # A relay task lost with a killed worker is harmless (the lease expires and the next tick
    # picks the rows up), but acking late makes a crash visible as a redelivery.
    task_acks_late=True,
    worker_prefetch_multiplier=1,
    broker_connection_retry_on_startup=True,
    beat_schedule=BEAT_SCHEDULE,
)
# Finds ``tasks.py`` in every installed app, django_arc's included.
app.autodiscover_tasks()
