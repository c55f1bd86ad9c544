"""rev-fixes70: a review of rev-memos (hand-routed resources among the served ones; a field
copy's own default and error messages), and of the items it saw and left.

What a serializer copy holds of its prototype (``serializers._clone``) and where a resource
routed by hand (``Resource.as_viewset()`` of one on no site) is listed."""

from __future__ import annotations

import pytest

from django_arc import Resource, sites
from django_arc import permissions as P
from tests.testapp.models import Gauge

pytestmark = pytest.mark.django_db

AUDIT = "/admin/django_arc/auditlog/"


class Rf70HandGauges(Resource):
    model = Gauge
    name = "rf70-hand-gauges"
    fields = ["id", "reading"]
    permissions = {key: P.require_auth() for key in ("list", "get")}


def test_the_audit_logs_resource_filter_lists_a_resource_routed_by_hand(admin_client):
    """The audit log records a hand-routed resource's writes under its name, as a
    registered one's; the admin's "resource" filter listed the sites' resources only, so
    its entries could not be picked out from the list (only by typing the query string)."""
    saved = list(sites._routed_by_hand)
    try:
        Rf70HandGauges().as_viewset()  # routed by hand: served on no site
        page = admin_client.get(AUDIT)
        assert page.status_code == 200
        assert "?resource=rf70-hand-gauges" in page.content.decode()
        assert "?resource=all-articles" in page.content.decode()  # a site's, as before
    finally:
        sites._routed_by_hand[:] = saved
        sites._changed()
