"""A body over Django's upload limits is 413 ``PAYLOAD_TOO_LARGE`` in the error envelope.

Django raises ``RequestDataTooBig`` (``DATA_UPLOAD_MAX_MEMORY_SIZE``, 2.5 MB by default) or
``TooManyFieldsSent`` (``DATA_UPLOAD_MAX_NUMBER_FIELDS``) while DRF reads the body; both were
a 500 ``INTERNAL_ERROR``. Found while documenting the statuses a route can answer.
"""

import bz2
import json
import zlib

import pytest
from django.test import override_settings

from tests.factories import AuthorFactory, BookFactory
from tests.testapp.models import Book

pytestmark = pytest.mark.django_db


def test_body_over_the_memory_limit_is_413(api):  # documented: test_openapi.test_errors_per_route
    body = json.dumps({"title": "x" * 3_000_000, "isbn": "1"})
    r = api.post("/api/books/", body, content_type="application/json")
    assert r.status_code == 413
    assert r.json()["code"] == "PAYLOAD_TOO_LARGE"
    assert r["X-Request-Id"] == r.json()["requestId"]
    assert not Book.objects.exists()


def test_form_body_over_the_memory_limit_is_413(api):
    """DRF before 3.16.1 hands its form parser the unread request, whose ``read()`` skips
    Django's memory limit: a form body of any size was parsed (a 400 naming the long title
    on the lowest DRF the package allows)."""
    form = "title=" + "x" * 3_000_000 + "&isbn=1"
    r = api.post("/api/books/", form, content_type="application/x-www-form-urlencoded")
    assert r.status_code == 413
    assert r.json()["code"] == "PAYLOAD_TOO_LARGE"
    assert not Book.objects.exists()


@pytest.mark.parametrize(
    ("compress", "content_type"),
    [
        (bz2.compress, "application/json; charset=bz2_codec"),
        (zlib.compress, "application/json; charset=zlib_codec"),
        (bz2.compress, "application/x-www-form-urlencoded; charset=bz2_codec"),
        (zlib.compress, "multipart/form-data; boundary=b; charset=zlib_codec"),
    ],
    ids=["json-bz2", "json-zlib", "form-bz2", "multipart-zlib"],
)
def test_a_body_whose_charset_is_no_text_encoding_is_400(api, compress, content_type):
    """Django accepts any charset ``codecs`` knows: on DRF before 3.18.2 a JSON body in
    ``bz2_codec`` was decompressed past the memory limit (checked against the compressed
    size) and created the row, and a form body in one was a 500. The charset is refused,
    whatever the DRF."""
    author = AuthorFactory()
    if content_type.startswith("application/json"):
        plain = json.dumps({"title": "T", "isbn": "978-1", "author": author.pk}).encode()
    else:
        plain = f"title=T&isbn=978-1&author={author.pk}".encode()
    r = api.generic("POST", "/api/books/", compress(plain), content_type=content_type)
    assert r.status_code == 400, r.content
    body = r.json()
    assert body["code"] == "VALIDATION_ERROR"
    charset = content_type.rsplit("charset=", 1)[1]
    assert body["error"] == f'Unsupported charset "{charset}" in request Content-Type header.'
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


@override_settings(DATA_UPLOAD_MAX_NUMBER_FIELDS=5)
def test_a_query_string_of_too_many_parameters_is_400_invalid_query(api):
    """Django's ``DATA_UPLOAD_MAX_NUMBER_FIELDS`` bounds the query string too
    (``TooManyFieldsSent`` from ``request.GET``): it was 413 ``PAYLOAD_TOO_LARGE``, a body's
    code, for a request with no body, where every other query the API cannot honour is 400
    ``INVALID_QUERY`` naming a parameter. It names the first one past the limit; a body of
    too many fields stays 413."""
    query = "&".join(f"f{i}=1" for i in range(6))
    BookFactory()
    r = api.get(f"/api/books/?{query}")
    assert r.status_code == 400, r.content
    body = r.json()
    assert body["code"] == "INVALID_QUERY"
    assert body["details"] == {"f5": "more than 5 parameters in the query string"}
    five = "&".join(f"f{i}=1" for i in range(5))
    assert api.get(f"/api/books/?{five}").status_code == 200
    form = "&".join(f"f{i}=1" for i in range(10))
    both = api.post(f"/api/books/?{five}", form, content_type="application/x-www-form-urlencoded")
    assert both.status_code == 413
    assert both.json()["code"] == "PAYLOAD_TOO_LARGE"


@override_settings(DATA_UPLOAD_MAX_NUMBER_FIELDS=2)
def test_the_api_root_names_a_query_parameter_past_the_limit_too(api):
    r = api.get("/api/?a=1&b%20c=2&%C3%A9t%C3%A9=3&d=4")
    assert r.status_code == 400, r.content
    assert r.json()["details"] == {"été": "more than 2 parameters in the query string"}
