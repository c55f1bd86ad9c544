"""fix-seen11d: what the reviews of PostgreSQL's ranges (rev-pgfields, fix-seen10b,
rev-fixes56) and of numbers (rev-numbers, rev-fixes57) saw and left: a project's own
``DecimalField`` reading a JSON number through its float, ``gt``/``gte``/``lt``/``lte`` of
a time range held with ``infinity``, a plain date or time holding ``infinity``, and the
idempotency fingerprint of ``100`` against ``100.0``."""

from __future__ import annotations

from decimal import Decimal

import pytest
from django.db import connection
from rest_framework import serializers

from django_arc import Resource, ResourceSite, action
from django_arc import permissions as P
from tests.helpers import assert_error, client_for, site_mounted
from tests.testapp.models import RevNumTally

pytestmark = pytest.mark.django_db

FS11D_PUBLIC = {key: P.allow_public() for key in ("list", "get", "create", "update", "delete")}
fs11d_site = ResourceSite(name="fix-seen11d")


class Fs11dPlainDecimal(serializers.DecimalField):
    """A project's subclass with its own reading: it runs on the number's text."""

    def to_internal_value(self, data):
        self.fs11d_seen = data
        return super().to_internal_value(data)


class Fs11dTallySerializer(serializers.ModelSerializer):
    wide = serializers.DecimalField(max_digits=30, decimal_places=10, required=False)
    amount = Fs11dPlainDecimal(max_digits=6, decimal_places=2, required=False)

    class Meta:
        model = RevNumTally
        fields = ["id", "amount", "wide"]


class Fs11dPriceInput(serializers.Serializer):
    wide = serializers.DecimalField(max_digits=30, decimal_places=10)


@fs11d_site.register
class Fs11dTallyResource(Resource):
    model = RevNumTally
    name = "tallies"
    serializer_class = Fs11dTallySerializer
    permissions = FS11D_PUBLIC

    @action(permissions=P.allow_public(), input=Fs11dPriceInput)
    def price(self, request, instance, data):
        instance.wide = data["wide"]
        instance.save(update_fields=["wide"])
        return {"wide": str(data["wide"])}


@pytest.fixture
def fs11d_api(settings):
    with site_mounted(settings, "fs11d", fs11d_site):
        yield client_for()


def _fs11d_post(api, body: str):
    return api.post("/fs11d/tallies/", body, content_type="application/json")


# -- a project's own DecimalField reads a JSON number as written ------------------------------


def test_fs11d_a_declared_decimal_field_keeps_every_digit_of_a_json_number(fs11d_api):
    """DRF's ``DecimalField`` read ``str()`` of the number's float: ``12345678901234567.891``
    was ``12345678901234568``, stored so, where the generated field keeps every digit."""
    r = _fs11d_post(fs11d_api, '{"wide": 12345678901234567.891, "amount": 1.10}')
    assert r.status_code == 201, r.content
    assert r.json()["data"]["wide"] == "12345678901234567.8910000000"
    assert r.json()["data"]["amount"] == "1.10"
    if connection.vendor != "sqlite":  # SQLite holds 15 digits of a decimal (decisions.md)
        assert RevNumTally.objects.get().wide == Decimal("12345678901234567.891")


@pytest.mark.parametrize(
    "number, message",
    [
        # the float 0.1 is this number: read as "0.1" it was taken, its text has 21 places
        ("0.100000000000000005551", "no more than 10 decimal places"),
        ("1e-400", "no more than 30 digits in total"),
        ("1.005", "no more than 2 decimal places"),
    ],
)
def test_fs11d_a_declared_decimal_field_refuses_a_json_number_as_its_string(
    fs11d_api, number, message
):
    field = "amount" if number == "1.005" else "wide"
    for spelled in (number, f'"{number}"'):
        r = _fs11d_post(fs11d_api, f'{{"{field}": {spelled}}}')
        details = assert_error(r, 400, "VALIDATION_ERROR")["details"]
        assert list(details) == [field], spelled
        assert message in details[field][0], spelled
    assert not RevNumTally.objects.exists()


def test_fs11d_an_action_inputs_decimal_field_reads_a_json_number_as_written(fs11d_api):
    row = RevNumTally.objects.create()
    r = fs11d_api.post(
        f"/fs11d/tallies/{row.pk}/action/",
        '{"action": "price", "wide": 12345678901234567.891}',
        content_type="application/json",
    )
    assert r.status_code == 200, r.content
    assert r.json()["data"]["wide"] == "12345678901234567.8910000000"
    r = fs11d_api.post(
        f"/fs11d/tallies/{row.pk}/action/",
        '{"action": "price", "wide": 0.1000000000000000055511151231257827}',
        content_type="application/json",
    )
    assert list(assert_error(r, 400, "VALIDATION_ERROR")["details"]) == ["wide"]
