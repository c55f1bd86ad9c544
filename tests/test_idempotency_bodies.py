"""What the idempotency fingerprint reads of a form or multipart body, found by hand
mutants of ``idempotency/keys.py`` that the suite let through:

- every value of a repeated form field counts (``tag=a&tag=b`` and ``tag=c&tag=b`` are two
  requests: the second is 422, not the first one's replay);
- an uploaded file is hashed and handed back to the route rewound: the route reads the
  whole file, not what the hash left of it.
"""

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import override_settings

from django_arc import Resource, ResourceSite, route
from django_arc import permissions as P
from shop.models import Product
from tests.factories import OrganizationFactory, member_client
from tests.helpers import assert_error, site_mounted
from tests.redis_support import arc_with

pytestmark = pytest.mark.django_db

DATABASE_STORE = {"STORE": "database", "TTL_SECONDS": 3600, "NAMESPACE": ""}
FORM = "application/x-www-form-urlencoded"


@override_settings(ARC=arc_with(IDEMPOTENCY=DATABASE_STORE))
def test_every_value_of_a_repeated_form_field_is_in_the_fingerprint():
    editor = member_client(OrganizationFactory(), "editor")
    base = "name=Widget&sku=W-1&price=9.50"
    first = editor.post(
        "/api/idem-products/", f"{base}&tag=a&tag=b", content_type=FORM, HTTP_IDEMPOTENCY_KEY="k"
    )
    assert first.status_code == 201, first.content
    again = editor.post(
        "/api/idem-products/", f"{base}&tag=a&tag=b", content_type=FORM, HTTP_IDEMPOTENCY_KEY="k"
    )
    assert again.status_code == 201 and again["X-Idempotency-Replayed"] == "true"
    other = editor.post(
        "/api/idem-products/", f"{base}&tag=c&tag=b", content_type=FORM, HTTP_IDEMPOTENCY_KEY="k"
    )
    assert_error(other, 422, "IDEMPOTENCY_KEY_REUSED")
    assert Product.objects.count() == 1


site = ResourceSite(name="idem-uploads")


@site.register
class UploadingResource(Resource):
    model = Product
    name = "uploads"
    fields = ["id", "name"]
    idempotent = True
    permissions = {"list": P.require_auth()}

    @route("POST", "upload", permissions=P.require_auth())
    def upload(self, request, view):
        return {"size": len(request.FILES["file"].read())}


@override_settings(ARC=arc_with(IDEMPOTENCY=DATABASE_STORE))
def test_a_keyed_upload_reaches_the_route_whole(settings):
    client = member_client(OrganizationFactory(), "editor")
    content = b"x" * 5000
    with site_mounted(settings, "idem-uploads", site):
        r = client.post(
            "/idem-uploads/uploads/upload/",
            {"file": SimpleUploadedFile("a.csv", content)},
            format="multipart",
            HTTP_IDEMPOTENCY_KEY="u1",
        )
        assert r.status_code == 200, r.content
        assert r.json()["data"] == {"size": len(content)}
        unkeyed = client.post(
            "/idem-uploads/uploads/upload/",
            {"file": SimpleUploadedFile("a.csv", content)},
            format="multipart",
        )
        assert unkeyed.json()["data"] == {"size": len(content)}
