"""The OpenAPI schema builds without warnings for the service-key authenticator."""

import pytest
from drf_spectacular.generators import SchemaGenerator


@pytest.mark.django_db
def test_service_key_security_scheme_in_schema(recwarn):
    from drf_spectacular.drainage import GENERATOR_STATS

    GENERATOR_STATS.reset()
    schema = SchemaGenerator().get_schema(request=None, public=True)
    scheme = schema["components"]["securitySchemes"]["arcServiceKey"]
    assert scheme == {"type": "http", "scheme": "bearer", "description": scheme["description"]}
    assert not any("ServiceKeyAuthentication" in str(w) for w in GENERATOR_STATS._warn_cache)
