"""The router's unnamed no-slash twins answer like the canonical routes but stay out of
schemas: documenting both spellings gave every operation two operationIds."""

import pytest
from drf_spectacular.generators import EndpointEnumerator

pytestmark = pytest.mark.django_db


def test_twins_answer_but_are_not_enumerated_for_schemas(api):
    assert api.get("/api/books").status_code == 200
    assert api.get("/api/books/").status_code == 200
    paths = {path for path, _regex, _method, _callback in EndpointEnumerator().get_api_endpoints()}
    assert "/api/books/" in paths and "/api/books/{id}/" in paths
    assert not [path for path in paths if not path.endswith("/")]
