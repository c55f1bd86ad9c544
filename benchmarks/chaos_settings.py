"""Settings of ``benchmarks/chaos.py``: the benchmarks' project with the query cache on (fresh
for 2 s, so reads go STALE and refresh under the faults too) and ``Idempotency-Key`` honoured
everywhere, on the store ``ARC_CHAOS_STORE`` names, with a short lock (``ARC_CHAOS_LOCK``)."""

import os

from benchmarks.settings import *  # noqa: F403
from benchmarks.settings import ARC, CACHES

ROOT_URLCONF = "benchmarks.chaos_urls"
ARC = {
    **ARC,
    "CACHE": {"ENABLED": True, "ALIAS": "redis", "STALE_SECONDS": 2, "GC_SECONDS": 120},
    "IDEMPOTENCY": {
        "ENABLED": True,
        "STORE": os.environ.get("ARC_CHAOS_STORE", "database"),
        "ALIAS": "redis",
        "LOCK_SECONDS": float(os.environ.get("ARC_CHAOS_LOCK", "4")),
    },
}
if "redis" in CACHES:
    CACHES["redis"]["OPTIONS"] = {"SOCKET_CONNECT_TIMEOUT": 0.5, "SOCKET_TIMEOUT": 0.5}

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "line": {"format": "%(asctime)s %(process)d %(name)s %(levelname)s %(message)s"}
    },
    "handlers": {
        "file": {
            "class": "logging.FileHandler",
            "filename": os.environ.get("ARC_CHAOS_LOG", os.devnull),
            "formatter": "line",
        }
    },
    "loggers": {
        "django_arc": {"handlers": ["file"], "level": "WARNING", "propagate": False},
        "django": {"handlers": ["file"], "level": "WARNING", "propagate": False},
    },
}
