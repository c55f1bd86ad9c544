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
