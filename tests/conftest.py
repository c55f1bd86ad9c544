import uuid

import pytest
from django.conf import settings
from django.test import override_settings
from rest_framework.test import APIClient


@pytest.fixture
def api():
    return APIClient()


@pytest.fixture(autouse=True)
def _fresh_cache():
    """Cached membership answers must not leak between tests (row ids are reused), nor cached
    answers and idempotency keys in Redis: every test gets a key prefix of its own (the
    SQLite and PostgreSQL runs share one Redis, and reseeded rows reuse their ids)."""
    from django.core.cache import cache

    cache.clear()
    caches = settings.CACHES
    if "redis" in caches:
        prefixed = {**caches, "redis": {**caches["redis"], "KEY_PREFIX": uuid.uuid4().hex}}
        with override_settings(CACHES=prefixed):
            yield
    else:
        yield
    cache.clear()


@pytest.fixture(autouse=True)
def _fresh_relay_streaks():
    """The Celery relay task's failure streaks outlive a tick on purpose (an outage is logged
    once a minute across ticks): each test starts with none, as docs/events.md tells a
    project's tests to do."""
    from django_arc.tasks import reset_relay_streaks

    reset_relay_streaks()


@pytest.fixture(scope="session")
def example_server(tmp_path_factory):
    """The example project served for real on seeded demo data (tests/example_server.py)."""
    from tests.example_server import start

    server, stop = start(tmp_path_factory.mktemp("example-project"))
    yield server
    stop()


@pytest.fixture(scope="session")
def live_server(django_db_setup, live_server):
    """pytest-django's, started once the test database is set up. It hands the tests'
    connection to the server's threads when the database is in memory, judged by ``NAME``
    when it starts: started first (a browser file alone), it read ``:memory:`` (the settings'
    name, not yet the test file's), and the request threads shared one SQLite connection,
    which crashed the interpreter when one closed it while another ran a query
    (tests/test_live_server.py)."""
    return live_server
