"""Settings for ``arc_relay`` subprocesses started by the relay tests.

The parent test passes the *test* database name (``ARC_PG_NAME``), the directory the
``FileTransport`` writes to (``ARC_RELAY_TEST_DIR``) and a short lease
(``ARC_RELAY_TEST_LEASE``) so a killed worker's batch is re-claimed within the test's budget.
"""

import os

from tests.settings import *  # noqa: F403
from tests.settings import ARC as _BASE_ARC

ARC = {
    **_BASE_ARC,
    "EVENTS": {
        "TRANSPORT": os.environ.get(
            "ARC_RELAY_TEST_TRANSPORT", "tests.outbox_support.FileTransport"
        ),
        "OPTIONS": {},
        "OUTBOX": True,
    },
    "OUTBOX": {"LEASE_SECONDS": float(os.environ.get("ARC_RELAY_TEST_LEASE", "30"))},
}

# ``ARC_RELAY_TEST_CONN_MAX_AGE``: the worker's CONN_MAX_AGE, with CONN_HEALTH_CHECKS on
# (tests of a long-running relay's connection)
if os.environ.get("ARC_RELAY_TEST_CONN_MAX_AGE"):
    DATABASES = {  # noqa: F405
        alias: {
            **config,
            "CONN_MAX_AGE": float(os.environ["ARC_RELAY_TEST_CONN_MAX_AGE"]),
            "CONN_HEALTH_CHECKS": True,
        }
        for alias, config in DATABASES.items()  # noqa: F405
    }
