"""A body over Django's upload limits is 413 ``PAYLOAD_TOO_LARGE`` in the error envelope.

Django raises ``RequestDataTooBig`` (``DATA_UPLOAD_MAX_MEMORY_SIZE``, 2.5 MB by default) or
``TooManyFieldsSent`` (``DATA_UPLOAD_MAX_NUMBER_FIELDS``) while DRF reads the body; both were
a 500 ``INTERNAL_ERROR``. Found while documenting the statuses a route can answer.
"""

import json

import pytest
from django.test import override_settings

from tests.testapp.models import Book

pytestmark = pytest.mark.django_db


def test_body_over_the_memory_limit_is_413(api):  # documented: test_openapi.test_errors_per_route
    body = json.dumps({"title": "x" * 3_000_000, "isbn": "1"})
    r = api.post("/api/books/", body, content_type="application/json")
    assert r.status_code == 413
    assert r.json()["code"] == "PAYLOAD_TOO_LARGE"
    assert r["X-Request-Id"] == r.json()["requestId"]
    assert not Book.objects.exists()


@override_settings(DATA_UPLOAD_MAX_NUMBER_FIELDS=5)
def test_form_with_too_many_fields_is_413(api):
    form = "&".join(f"f{i}=1" for i in range(10))
    r = api.post("/api/books/", form, content_type="application/x-www-form-urlencoded")
    assert r.status_code == 413
    assert r.json()["code"] == "PAYLOAD_TOO_LARGE"


FORM = b"name=n&sku=s&price=1"
MULTIPART = b'--b\r\nContent-Disposition: form-data; name="name"\r\n\r\nn\r\n--b--\r\n'


@pytest.mark.parametrize("key", [None, "charset-1"])
@pytest.mark.parametrize(
    ("body", "content_type"),
    [
        (FORM, "application/x-www-form-urlencoded; charset=punycode"),
        (MULTIPART, "multipart/form-data; boundary=b; charset=idna"),
    ],
    ids=["form-punycode", "multipart-idna"],
)
def test_a_form_body_its_charset_cannot_decode_is_400(body, content_type, key):
    """Django decodes form fields with ``errors="replace"``, which the ``idna`` and
    ``punycode`` codecs refuse: the parser's ``UnicodeError`` was a 500 (on the example's
    cached, idempotent products, keyed or not). It is a body that does not parse."""
    from shop.models import Product
    from tests.factories import OrganizationFactory, member_client

    org = OrganizationFactory()
    client = member_client(org, "admin")
    headers = {"HTTP_IDEMPOTENCY_KEY": key} if key else {}
    for url in ("/api/products/", "/api/products/bulk/"):
        r = client.generic("POST", url, body, content_type=content_type, **headers)
        assert r.status_code == 400, r.content
        assert r.json()["code"] == "VALIDATION_ERROR"
    assert not Product.objects.exists()
