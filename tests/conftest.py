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


@pytest.fixture(scope="session")
def example_server(tmp_path_factory):
    """The example project served for real on seeded demo data (tests/example_server.py)."""
    from tests.example_server import start

    server, stop = start(tmp_path_factory.mktemp("example-project"))
    yield server
    stop()
