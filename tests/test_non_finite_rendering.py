"""A row's non-finite number rendered by a field arc did not build: a project serializer's
own ``FloatField``, a ``SerializerMethodField`` returning ``inf``/``NaN`` (or a structure
holding one), a ``DecimalField`` with ``COERCE_DECIMAL_TO_STRING=False`` over PostgreSQL's
``numeric`` ``NaN``. ``ArcFloatField`` (fix-seen6b) renders its own as ``null``; these were
a 500 under DRF's strict ``JSONRenderer`` (docs/decisions.md: bad data in a row is no 500).
"""

from decimal import Decimal
from types import MappingProxyType

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.db import connection
from rest_framework import serializers
from rest_framework.test import APIClient

from django_arc import Resource, action
from django_arc import permissions as P
from django_arc.outbox.models import OutboxEvent
from tests.test_extension_points import mounted_site
from tests.testapp.models import Gauge, PagedRow

pytestmark = pytest.mark.django_db

PUBLIC = {"list": P.allow_public(), "get": P.allow_public()}


class OwnFloatSerializer(serializers.ModelSerializer):
    ratio = serializers.FloatField(allow_null=True, required=False)
    score = serializers.SerializerMethodField()
    shape = serializers.SerializerMethodField()

    class Meta:
        model = PagedRow
        fields = ["id", "label", "ratio", "score", "shape"]

    def get_score(self, row: PagedRow) -> float:
        return float(row.label) if row.label else 0.5

    def get_shape(self, row: PagedRow) -> dict:
        return {"points": [1.0, float(row.label or 0)], "at": {"x": float(row.label or 0)}}


class OwnFloats(Resource):
    model = PagedRow
    name = "own-floats"
    serializer_class = OwnFloatSerializer
    permissions = PUBLIC


@pytest.fixture
def site(settings):
    with mounted_site(settings, "nf", OwnFloats):
        yield


@pytest.mark.parametrize("value", ["inf", "-inf", "nan"])
def test_a_project_float_or_method_field_holding_a_non_finite_float_renders_null(api, site, value):
    row = PagedRow.objects.create(label=value, ratio=float(value))
    PagedRow.objects.create(label="2", ratio=1.5)
    r = api.get("/nf/own-floats/")
    assert r.status_code == 200, r.content
    first, second = r.json()["docs"]
    # SQLite stores a NaN as NULL: the column then reads back null anyway
    assert first == {
        "id": row.pk,
        "label": value,
        "ratio": None,
        "score": None,
        "shape": {"points": [1.0, None], "at": {"x": None}},
    }
    assert second["ratio"] == 1.5 and second["score"] == 2.0
    assert second["shape"] == {"points": [1.0, 2.0], "at": {"x": 2.0}}
    r = api.get(f"/nf/own-floats/{row.pk}/")
    assert r.status_code == 200, r.content
    assert r.json()["data"]["score"] is None and r.json()["data"]["ratio"] is None


class Amounts(Resource):
    model = PagedRow
    name = "amounts"
    fields = ["id", "amount"]
    permissions = PUBLIC


def _seen8c_rows_one_of_them_nan() -> tuple[PagedRow, PagedRow]:
    """Two rows: one of amount 1.50, one whose ``numeric`` amount PostgreSQL holds as
    ``NaN`` (written in SQL: Django writes no such decimal)."""
    row = PagedRow.objects.create(label="n", amount=Decimal("1.50"))
    odd = PagedRow.objects.create(label="n")
    table = PagedRow._meta.db_table
    with connection.cursor() as cursor:
        cursor.execute(f"UPDATE {table} SET amount = %s::numeric WHERE id = %s", ["NaN", odd.pk])
    return row, odd


@pytest.mark.parametrize("coerce", [True, False])
def test_a_numeric_nan_renders_null_whatever_decimals_render_as(api, settings, coerce):
    """PostgreSQL's ``numeric`` holds ``NaN`` (not an infinity: a Django ``DecimalField`` has
    a precision; SQLite's decimal column cannot be given one through Django): with
    ``COERCE_DECIMAL_TO_STRING=False`` DRF's encoder made it the float NaN, which the strict
    renderer refused (a 500); as a string it rendered ``"NaN"``, a number no reader parses
    as one. Both render ``null``, as a float's NaN does."""
    if connection.vendor != "postgresql":
        pytest.skip("only PostgreSQL's numeric holds NaN")
    settings.REST_FRAMEWORK = {**settings.REST_FRAMEWORK, "COERCE_DECIMAL_TO_STRING": coerce}
    with mounted_site(settings, "nfd", Amounts):
        row, odd = _seen8c_rows_one_of_them_nan()
        assert not PagedRow.objects.get(pk=odd.pk).amount.is_finite()
        r = api.get("/nfd/amounts/")
        assert r.status_code == 200, r.content
        one = "1.50" if coerce else 1.5
        assert r.json()["docs"] == [{"id": row.pk, "amount": one}, {"id": odd.pk, "amount": None}]
        r = api.get(f"/nfd/amounts/{odd.pk}/")
        assert r.status_code == 200 and r.json()["data"]["amount"] is None, r.content


def _seen8c_amounts(name: str, field_class: type[serializers.DecimalField]) -> type[Resource]:
    """A public resource ``name`` of ``PagedRow`` whose own serializer declares ``amount``
    as a project's ``field_class`` (a ``DecimalField``, nullable)."""

    class AmountSerializer(serializers.ModelSerializer):
        amount = field_class(max_digits=10, decimal_places=2, allow_null=True)

        class Meta:
            model = PagedRow
            fields = ["id", "amount"]

    return type(
        "".join(part.title() for part in name.split("-")),  # own-amounts: OwnAmounts
        (Resource,),
        {
            "__module__": __name__,
            "model": PagedRow,
            "name": name,
            "serializer_class": AmountSerializer,
            "permissions": PUBLIC,
        },
    )


OwnAmounts = _seen8c_amounts("own-amounts", serializers.DecimalField)


def test_a_project_decimal_field_renders_a_numeric_nan_as_null(api, settings):
    """A ``DecimalField`` a project serializer declares rendered PostgreSQL's ``numeric``
    ``NaN`` as the string ``"NaN"`` (DRF's), where arc's renders ``null``: the pass over a
    row's rendered values saw a string. What the field renders stays its own but for that
    value, as a project ``FloatField``'s NaN renders ``null`` (fix-seen7, decisions.md)."""
    if connection.vendor != "postgresql":
        pytest.skip("only PostgreSQL's numeric holds NaN")
    with mounted_site(settings, "nfo", OwnAmounts):
        row, odd = _seen8c_rows_one_of_them_nan()
        r = api.get("/nfo/own-amounts/")
        assert r.status_code == 200, r.content
        assert r.json()["docs"] == [
            {"id": row.pk, "amount": "1.50"},
            {"id": odd.pk, "amount": None},
        ]
        r = api.get(f"/nfo/own-amounts/{odd.pk}/")
        assert r.status_code == 200 and r.json()["data"]["amount"] is None, r.content


class MoneyField(serializers.DecimalField):
    """A project's decimal rendering a structure (an amount and its currency)."""

    def to_representation(self, value):
        return {"amount": super().to_representation(value), "currency": "EUR"}


MoneyAmounts = _seen8c_amounts("money-amounts", MoneyField)


def test_a_project_decimal_field_rendering_a_structure_is_rendered_as_it_is(api, settings):
    """The pass making a project ``DecimalField``'s ``"NaN"`` null (fix-seen7) looked its
    rendered value up in a set of strings: a ``DecimalField`` subclass rendering a dict (an
    amount and its currency) raised ``TypeError: unhashable type`` on every row, a 500 on
    every read of the resource. What it renders is its own."""
    with mounted_site(settings, "nfm", MoneyAmounts):
        row = PagedRow.objects.create(label="m", amount=Decimal("1.50"))
        r = api.get("/nfm/money-amounts/")
        assert r.status_code == 200, r.content[:300]
        assert r.json()["docs"] == [{"id": row.pk, "amount": {"amount": "1.50", "currency": "EUR"}}]
        r = api.get(f"/nfm/money-amounts/{row.pk}/")
        assert r.status_code == 200, r.content[:300]
        assert r.json()["data"]["amount"] == {"amount": "1.50", "currency": "EUR"}


# -- a project FloatField taking NaN into a NOT NULL column (fix-seen8b) ---------------------


class Fs8bOwnReadingSerializer(serializers.ModelSerializer):
    reading = serializers.FloatField()

    class Meta:
        model = Gauge
        fields = ["id", "reading"]


class Fs8bOwnReadings(Resource):
    model = Gauge
    name = "own-readings"
    serializer_class = Fs8bOwnReadingSerializer
    permissions = {**PUBLIC, "create": P.allow_public(), "update": P.allow_public()}


@pytest.mark.parametrize("sent", ["NaN", "-nan", "Infinity", "-Infinity", "1e999"])
def test_a_project_float_field_refuses_a_non_finite_value_on_every_drf(api, settings, sent):
    """A project's own ``FloatField`` took ``"NaN"`` on DRF before 3.18 (3.18 refuses
    non-finite floats, encode/django-rest-framework#9998), and SQLite stores a NaN as
    ``NULL``: into a ``NOT NULL`` column it was the database's ``IntegrityError``, a 409
    ``CONFLICT`` naming nothing, where PostgreSQL stored it (201) and rendered it ``null``.
    It is 400 naming the field on every DRF the package allows and every database,
    nothing written, as DRF 3.18 answers."""
    with mounted_site(settings, "nfr", Fs8bOwnReadings):
        r = api.post("/nfr/own-readings/", {"reading": sent}, format="json")
        assert r.status_code == 400, r.content
        assert r.json()["code"] == "VALIDATION_ERROR"
        assert r.json()["details"] == {"reading": ["A valid number is required."]}
        assert not Gauge.objects.exists()
        row = Gauge.objects.create(reading=2.5)
        r = api.patch(f"/nfr/own-readings/{row.pk}/", {"reading": sent}, format="json")
        assert r.status_code == 400, r.content
        assert list(r.json()["details"]) == ["reading"]
        row.refresh_from_db()
        assert row.reading == 2.5
        r = api.patch(f"/nfr/own-readings/{row.pk}/", {"reading": "-1.5e3"}, format="json")
        assert r.status_code == 200 and r.json()["data"]["reading"] == -1500.0, r.content
    assert OutboxEvent.objects.count() == 1


def _rf44_whole_tenths(value):
    """A project validator doing arithmetic a non-finite float cannot take (``int()``
    raises ``ValueError`` for a NaN, ``OverflowError`` for an infinity)."""
    if int(value * 10) != value * 10:
        raise serializers.ValidationError("Whole tenths only.")


class Rf44ValidatedReadingSerializer(Fs8bOwnReadingSerializer):
    reading = serializers.FloatField(validators=[_rf44_whole_tenths])


class Rf44ValidatedReadings(Fs8bOwnReadings):
    name = "validated-readings"
    serializer_class = Rf44ValidatedReadingSerializer


@pytest.mark.parametrize("sent", ["NaN", "Infinity", "1e999"])
def test_a_project_float_field_refuses_a_non_finite_value_before_its_own_validators(
    api, settings, sent
):
    """DRF 3.18 refuses a non-finite float in ``to_internal_value``, before the field's
    validators run. arc gave older DRFs the refusal as one more validator, run after the
    project's own, and DRF runs every validator: a project validator doing arithmetic on
    the value (``int(value * 10)``) raised ``ValueError``/``OverflowError`` on DRF 3.17,
    a 500 for a body DRF 3.18 answers 400. Refused first, the project's validators never
    see it: 400 naming the field, on every DRF; a finite value still meets them."""
    with mounted_site(settings, "nfv", Rf44ValidatedReadings):
        r = api.post("/nfv/validated-readings/", {"reading": sent}, format="json")
        assert r.status_code == 400, r.content
        assert r.json()["details"] == {"reading": ["A valid number is required."]}
        r = api.post("/nfv/validated-readings/", {"reading": 1.25}, format="json")
        assert r.status_code == 400, r.content
        assert r.json()["details"] == {"reading": ["Whole tenths only."]}
        assert not Gauge.objects.exists()
        r = api.post("/nfv/validated-readings/", {"reading": 1.5}, format="json")
        assert r.status_code == 201, r.content


class Rf44ScaleInput(serializers.Serializer):
    factor = serializers.FloatField(validators=[_rf44_whole_tenths])
    offset = serializers.FloatField(allow_null=True, required=False)


class Rf44ScaledReadings(Fs8bOwnReadings):
    name = "scaled-readings"

    @action(permissions=P.allow_public(), input=Rf44ScaleInput)
    def scale(self, request, instance, data):
        instance.reading = instance.reading * data["factor"] + (data.get("offset") or 0)
        instance.save()
        return instance


@pytest.mark.parametrize("sent", ["NaN", "-Infinity", "1e999"])
def test_an_action_input_float_field_refuses_a_non_finite_value_on_every_drf(api, settings, sent):
    """An action's ``input`` serializer's ``FloatField`` is the project's too: a non-finite
    value is 400 naming the field on every DRF, before the field's own validators (which
    raised on it, a 500 on DRF 3.17), the row untouched; ``null`` is still the
    ``allow_null`` field's, and a finite value runs the action."""
    with mounted_site(settings, "nfa", Rf44ScaledReadings):
        row = Gauge.objects.create(reading=2.0)
        url = f"/nfa/scaled-readings/{row.pk}/action/"
        for body, field in (
            ({"action": "scale", "factor": sent}, "factor"),
            ({"action": "scale", "factor": 1.5, "offset": sent}, "offset"),
        ):
            r = api.post(url, body, format="json")
            assert r.status_code == 400, r.content
            assert r.json()["details"] == {field: ["A valid number is required."]}
        row.refresh_from_db()
        assert row.reading == 2.0
        r = api.post(url, {"action": "scale", "factor": 1.5, "offset": None}, format="json")
        assert r.status_code == 200, r.content
        row.refresh_from_db()
        assert row.reading == 3.0


# -- a project serializer rendering a row as something other than a dict (fix-seen8b) -------


class Fs8bProxySerializer(serializers.ModelSerializer):
    """Renders each row as a read-only mapping, with a declared decimal and a float."""

    amount = serializers.DecimalField(max_digits=10, decimal_places=2, allow_null=True)
    score = serializers.SerializerMethodField()

    class Meta:
        model = PagedRow
        fields = ["id", "label", "ratio", "amount", "score"]

    def get_score(self, row):
        return row.ratio

    def to_representation(self, instance):
        return MappingProxyType(dict(super().to_representation(instance)))


class Fs8bListSerializer(Fs8bProxySerializer):
    def to_representation(self, instance):
        return [instance.pk, instance.label]


def test_a_project_serializer_rendering_a_mapping_that_is_no_dict_is_served(api, settings):
    """A ``to_representation()`` returning a ``Mapping`` that is no ``dict`` beside a
    declared ``DecimalField`` was a 500 (the decimal pass assigned into it), and a float's
    infinity in it escaped the pass making non-finite numbers ``null`` (the renderer's
    500). It is read as the dict it maps."""

    class Fs8bProxies(Resource):
        model = PagedRow
        name = "proxies"
        serializer_class = Fs8bProxySerializer
        permissions = {**PUBLIC, "create": P.allow_public()}

    with mounted_site(settings, "nfp", Fs8bProxies):
        row = PagedRow.objects.create(label="p", ratio=float("inf"), amount=Decimal("1.50"))
        r = api.get("/nfp/proxies/")
        assert r.status_code == 200, r.content[:300]
        assert r.json()["docs"] == [
            {"id": row.pk, "label": "p", "ratio": None, "amount": "1.50", "score": None}
        ]
        r = api.get(f"/nfp/proxies/{row.pk}/")
        assert r.status_code == 200, r.content[:300]
        assert r.json()["data"]["score"] is None
        r = api.post("/nfp/proxies/", {"label": "q", "amount": "2"}, format="json")
        assert r.status_code == 201, r.content[:300]
        assert r.json()["data"]["amount"] == "2.00"


def test_a_project_serializer_rendering_a_row_as_a_list_is_named_as_misconfigured(settings):
    """A row rendered as a list is no object: DRF's ``serializer.data`` refuses it itself,
    and with a declared ``DecimalField`` it was ``AttributeError: 'list' object has no
    attribute 'get'``. It is the project's error, named at first use
    (``ImproperlyConfigured``: the serializer and what it returned, reported as any 500
    is); the client gets the envelope's 500, no traceback."""

    class Fs8bLists(Resource):
        model = PagedRow
        name = "lists"
        serializer_class = Fs8bListSerializer
        permissions = PUBLIC

    with mounted_site(settings, "nfl", Fs8bLists):
        row = PagedRow.objects.create(label="l")
        for url in ("/nfl/lists/", f"/nfl/lists/{row.pk}/"):
            with pytest.raises(ImproperlyConfigured, match="Fs8bListSerializer.*returned a list"):
                APIClient().get(url)  # the test client raises what Django reports
            r = APIClient(raise_request_exception=False).get(url)
            assert r.status_code == 500
            assert r.json()["code"] == "INTERNAL_ERROR" and "Fs8b" not in r.content.decode()
