"""Settings of ``tests/idempotency_procs.py`` subprocesses: the test settings, with the
idempotency store (``ARC_IDEM_STORE``), lock (``ARC_IDEM_LOCK``) and Redis key prefix
(``ARC_IDEM_PREFIX``) of the parent test."""

import os

from tests.settings import *  # noqa: F403
from tests.settings import ARC as _BASE_ARC
from tests.settings import CACHES as _BASE_CACHES

ARC = {
    **_BASE_ARC,
    "IDEMPOTENCY": {
        "STORE": os.environ.get("ARC_IDEM_STORE", "database"),
        "ALIAS": "redis",
        "LOCK_SECONDS": float(os.environ.get("ARC_IDEM_LOCK", "30")),
    },
}
CACHES = dict(_BASE_CACHES)
if "redis" in CACHES:
    CACHES["redis"] = {**CACHES["redis"], "KEY_PREFIX": os.environ.get("ARC_IDEM_PREFIX", "")}
