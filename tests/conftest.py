import pytest
from rest_framework.test import APIClient


@pytest.fixture
def api():
    return APIClient()


@pytest.fixture(autouse=True)
def _fresh_cache():
    """Cached membership answers must not leak between tests (row ids are reused)."""
    from django.core.cache import cache

    cache.clear()
    yield
    cache.clear()


@pytest.fixture(scope="session")
def example_server(tmp_path_factory):
    """The example project served for real on seeded demo data (tests/example_server.py)."""
    from tests.example_server import start

    server, stop = start(tmp_path_factory.mktemp("example-project"))
    yield server
    stop()
