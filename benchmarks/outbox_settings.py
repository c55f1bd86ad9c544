"""Settings for ``benchmarks/outbox.py`` and the relay workers it starts.

``ARC_BENCH_TRANSPORT`` = ``memory`` (default) or ``redis`` (RedisStreamsTransport at
``ARC_REDIS_URL``, stream ``arc:bench``).
"""

import os

from tests.settings import *  # noqa: F403
from tests.settings import ARC as _BASE_ARC

if os.environ.get("ARC_BENCH_TRANSPORT", "memory") == "redis":
    _TRANSPORT = {
        "TRANSPORT": "django_arc.events.transports.RedisStreamsTransport",
        "OPTIONS": {
            "url": os.environ.get("ARC_REDIS_URL", ""),
            "stream": "arc:bench",
            "maxlen": 1_000_000,
        },
    }
else:
    _TRANSPORT = {"TRANSPORT": "django_arc.events.transports.MemoryTransport", "OPTIONS": {}}

ARC = {**_BASE_ARC, "EVENTS": {**_TRANSPORT, "OUTBOX": True}}
DATABASES["default"]["CONN_MAX_AGE"] = None  # noqa: F405 - one connection per process
LOGGING = {"version": 1, "disable_existing_loggers": False}
