"""A project's ``serializer_class`` rendering a column under another name (``unit_cost =
DecimalField(source="cost")``) with a field rule on it (``visible_to("admin")``).

Field rules are keyed by the serializer's names; the query string names model columns
(``filter_fields = {"cost": [...]}``, ``sort_fields = ["cost"]``). Before, a viewer, from
whom ``unit_cost`` is hidden, filtered ``?cost[gte]=5`` and sorted ``?sort=-cost`` by it,
and a keyset cursor of a ``default_sort = "cost"`` list carried its values: the column a
restricted field renders is now restricted with it, for the callers the rule restricts.
"""

import base64
import json

import pytest
from rest_framework import serializers

from django_arc import Resource, ResourceSite, presets
from django_arc import fields as F
from django_arc import permissions as P
from shop.models import Product
from tests.factories import OrganizationFactory, ProductFactory, UserFactory, member_client
from tests.helpers import assert_error, site_mounted
from tests.testapp.models import Article

pytestmark = pytest.mark.django_db

URL = "/rs/renamed-costs/"


class RenamedCostSerializer(serializers.ModelSerializer):
    unit_cost = serializers.DecimalField(
        source="cost", max_digits=10, decimal_places=2, required=False
    )

    class Meta:
        model = Product
        fields = ["id", "name", "sku", "price", "organization", "unit_cost"]


class RenamedCostResource(Resource):
    model = Product
    name = "renamed-costs"
    serializer_class = RenamedCostSerializer
    filter_fields = {"cost": ["gte", "eq"], "name": ["eq"]}
    sort_fields = ["cost", "name"]
    search_fields = ["name"]
    default_sort = "cost"
    presets = [presets.MultiTenant(tenant_field="organization")]
    permissions = {k: P.require_org_membership() for k in ("list", "get")}
    field_permissions = {"unit_cost": F.visible_to("admin")}


class BothNamesSerializer(RenamedCostSerializer):
    class Meta(RenamedCostSerializer.Meta):
        fields = [*RenamedCostSerializer.Meta.fields, "cost"]


class BothNamesResource(RenamedCostResource):
    """The column is also rendered under its own name, to everyone: no secret to filter."""

    name = "both-names"
    serializer_class = BothNamesSerializer


@pytest.fixture
def org(settings):
    site = ResourceSite(name="renamed-costs-site")
    site.register(RenamedCostResource)
    site.register(BothNamesResource)
    with site_mounted(settings, "rs", site):
        org = OrganizationFactory()
        ProductFactory(organization=org, sku="A", cost="3.00")
        ProductFactory(organization=org, sku="B", cost="9.00")
        yield org


@pytest.mark.parametrize(
    "query, param",
    [("cost[gte]=5", "cost[gte]"), ("cost=3.00", "cost"), ("sort=-cost", "sort")],
)
def test_a_viewer_cannot_probe_the_column_of_a_renamed_field_hidden_from_it(org, query, param):
    body = assert_error(member_client(org, "viewer").get(f"{URL}?{query}"), 400, "INVALID_QUERY")
    assert list(body["details"]) == [param]


def test_a_viewer_gets_no_cursor_holding_the_hidden_column(org):
    viewer = member_client(org, "viewer")
    body = assert_error(viewer.get(f"{URL}?limit=1&after="), 400, "INVALID_QUERY")
    assert list(body["details"]) == ["after"]
    assert viewer.get(f"{URL}?name=x&sort=name").status_code == 200


def test_the_admin_who_reads_the_field_still_filters_sorts_and_pages_by_its_column(org):
    admin = member_client(org, "admin")
    r = admin.get(f"{URL}?cost[gte]=5")
    assert [d["unit_cost"] for d in r.json()["docs"]] == ["9.00"]
    r = admin.get(f"{URL}?sort=-cost")
    assert [d["unit_cost"] for d in r.json()["docs"]] == ["9.00", "3.00"]
    r = admin.get(f"{URL}?limit=1&after=")
    assert r.status_code == 200 and r.json()["docs"][0]["unit_cost"] == "3.00"
    cursor = r.json()["next"]
    assert json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))["s"] == "cost"


def test_a_column_another_field_renders_to_the_caller_stays_queryable(org):
    viewer = member_client(org, "viewer")
    r = viewer.get("/rs/both-names/?cost[gte]=5&sort=-cost")
    assert r.status_code == 200, r.json()
    assert [(d["cost"], "unit_cost" in d) for d in r.json()["docs"]] == [("9.00", False)]


class AuthorIdSerializer(serializers.ModelSerializer):
    """The owner rendered by its column name under another name (``source="owner_id"``)."""

    author = serializers.IntegerField(source="owner_id", required=False)

    class Meta:
        model = Article
        fields = ["id", "title", "slug", "organization", "author"]


class AuthorIdResource(Resource):
    model = Article
    name = "author-ids"
    serializer_class = AuthorIdSerializer
    filter_fields = {"owner": ["eq"], "owner_id": ["eq"], "title": ["eq"]}
    sort_fields = ["owner", "title"]
    presets = [presets.MultiTenant(tenant_field="organization")]
    permissions = {k: P.require_org_membership() for k in ("list", "get")}
    field_permissions = {"author": F.visible_to("admin")}


class WriteOnlyOwnerSerializer(AuthorIdSerializer):
    author = serializers.IntegerField(source="owner_id", required=False, write_only=True)


class WriteOnlyOwnerResource(AuthorIdResource):
    name = "write-only-owners"
    serializer_class = WriteOnlyOwnerSerializer
    field_permissions = {}


@pytest.mark.parametrize("path, who", [("author-ids", "viewer"), ("write-only-owners", "admin")])
@pytest.mark.parametrize(
    "query, param",
    [("owner=1", "owner"), ("owner_id=1", "owner_id"), ("sort=owner", "sort")],
)
def test_a_renamed_foreign_key_column_named_by_its_attname_is_restricted_too(
    settings, path, who, query, param
):
    """``source="owner_id"`` names the column by its attname; the query string's ``owner``
    (and ``owner_id``) are the same column: ``?owner=`` told a viewer whose the row was."""
    site = ResourceSite(name="author-ids-site")
    site.register(AuthorIdResource)
    site.register(WriteOnlyOwnerResource)
    with site_mounted(settings, "ai", site):
        org = OrganizationFactory()
        client = member_client(org, who)
        Article.objects.create(organization=org, slug="a", title="A", owner=UserFactory())
        row = client.get(f"/ai/{path}/").json()["docs"][0]
        assert "author" not in row
        body = assert_error(client.get(f"/ai/{path}/?{query}"), 400, "INVALID_QUERY")
        assert list(body["details"]) == [param]
        assert client.get(f"/ai/{path}/?title=A&sort=title").status_code == 200


def _schema_parameters(resource_class: type[Resource]) -> dict[str, dict]:
    from django_arc.filters import QueryLanguageFilter

    view = resource_class().as_viewset()()
    view.resource = resource_class()
    return {p["name"]: p for p in QueryLanguageFilter().get_schema_operation_parameters(view)}


def test_the_schema_says_the_column_of_a_restricted_renamed_field_depends_on_the_caller():
    """The schema is one for every caller: ``cost`` is documented, with the refusal a viewer
    gets (``unit_cost`` renders it and is ``visible_to("admin")``), as ``unit_cost`` is in
    ``select``'s description."""
    params = _schema_parameters(RenamedCostResource)
    for name in ("cost", "cost[gte]"):
        assert "Refused (400) for callers who may not read `cost`" in params[name]["description"]
    assert "Refused" not in params["name"]["description"]
    assert "`cost`, `unit_cost` depend on the caller" in params["select"]["description"]


def test_the_schema_offers_no_filter_or_sort_on_the_column_only_a_write_only_rename_reads():
    """``author = IntegerField(source="owner_id", write_only=True)``: no caller reads the
    owner, so its column (``owner``, ``owner_id``) is no filter or sort key of the schema;
    the per-request refusal (the field's rename, above) does not reach the schema."""
    params = _schema_parameters(WriteOnlyOwnerResource)
    assert not any(n.startswith("owner") for n in params), sorted(params)
    assert "owner" not in json.dumps(params["sort"])
    assert "title" in params and "`title`" in json.dumps(params["sort"])


class CostTokenSerializer(serializers.ModelSerializer):
    """``cost`` written through a write-only alias, and rendered under its own name too."""

    cost_token = serializers.DecimalField(
        source="cost", max_digits=10, decimal_places=2, write_only=True, required=False
    )

    class Meta:
        model = Product
        fields = ["id", "name", "sku", "price", "organization", "cost", "cost_token"]


class CostTokenResource(Resource):
    model = Product
    name = "cost-tokens"
    serializer_class = CostTokenSerializer
    filter_fields = {"cost": ["gte"], "name": ["eq"]}
    sort_fields = ["cost", "name"]
    presets = [presets.MultiTenant(tenant_field="organization")]
    permissions = {k: P.require_org_membership() for k in ("list", "get")}


def test_a_column_a_readable_field_renders_stays_queryable_beside_a_write_only_alias(settings):
    """A column both a ``write_only`` field and a readable one read is no secret: every
    caller reads it as ``cost``, so ``?cost[gte]=`` and ``?sort=cost`` stay (only the
    columns *only* write-only fields read are hidden)."""
    site = ResourceSite(name="cost-tokens-site")
    site.register(CostTokenResource)
    with site_mounted(settings, "ct", site):
        org = OrganizationFactory()
        ProductFactory(organization=org, sku="A", cost="3.00")
        ProductFactory(organization=org, sku="B", cost="9.00")
        viewer = member_client(org, "viewer")
        r = viewer.get("/ct/cost-tokens/?cost[gte]=5")
        assert r.status_code == 200, r.json()
        assert [d["cost"] for d in r.json()["docs"]] == ["9.00"]
        r = viewer.get("/ct/cost-tokens/?sort=-cost")
        assert [d["cost"] for d in r.json()["docs"]] == ["9.00", "3.00"]
        assert "cost_token" not in r.json()["docs"][0]
        body = assert_error(viewer.get("/ct/cost-tokens/?select=cost_token"), 400, "INVALID_QUERY")
        assert list(body["details"]) == ["select"]


class SwappedNamesSerializer(serializers.ModelSerializer):
    """``cost`` renders the ``price`` column (restricted); ``unit_cost`` renders ``cost``."""

    cost = serializers.DecimalField(source="price", max_digits=10, decimal_places=2)
    unit_cost = serializers.DecimalField(
        source="cost", max_digits=10, decimal_places=2, required=False
    )

    class Meta:
        model = Product
        fields = ["id", "name", "sku", "organization", "cost", "unit_cost"]


class SwappedNamesResource(RenamedCostResource):
    name = "swapped-names"
    serializer_class = SwappedNamesSerializer
    filter_fields = {"price": ["gte"], "name": ["eq"]}
    sort_fields = ["price", "name"]
    default_sort = "name"
    field_permissions = {"cost": F.visible_to("admin")}


def test_a_field_named_after_another_column_keeps_its_own_column_restricted(settings):
    """A field named like one column may render another (``cost = ...(source="price")``)
    while a second field renders the first (``unit_cost = ...(source="cost")``): the map
    of renamed columns overwrote ``cost → price`` with ``cost → cost`` (the entry meant for
    a column rendered under its own name), so a viewer from whom ``cost`` is hidden
    filtered and sorted by ``price``, the value it hides."""
    site = ResourceSite(name="swapped-names-site")
    site.register(SwappedNamesResource)
    with site_mounted(settings, "sw", site):
        org = OrganizationFactory()
        ProductFactory(organization=org, sku="A", price="3.00", cost="1.00")
        ProductFactory(organization=org, sku="B", price="9.00", cost="2.00")
        viewer = member_client(org, "viewer")
        assert "cost" not in viewer.get("/sw/swapped-names/").json()["docs"][0]
        for query, param in (("price[gte]=5", "price[gte]"), ("sort=-price", "sort")):
            body = assert_error(viewer.get(f"/sw/swapped-names/?{query}"), 400, "INVALID_QUERY")
            assert list(body["details"]) == [param]
        r = member_client(org, "admin").get("/sw/swapped-names/?price[gte]=5")
        assert [d["cost"] for d in r.json()["docs"]] == ["9.00"]


class ComputedCostSerializer(RenamedCostSerializer):
    """``cost`` is named like the column but renders none of it (a method field);
    ``unit_cost`` renders the ``cost`` column (restricted)."""

    cost = serializers.SerializerMethodField()

    class Meta(RenamedCostSerializer.Meta):
        fields = [*RenamedCostSerializer.Meta.fields, "cost"]

    def get_cost(self, obj: Product) -> str:
        return "ask us"


class ComputedCostResource(RenamedCostResource):
    name = "computed-costs"
    serializer_class = ComputedCostSerializer


def test_a_field_named_like_a_column_but_rendering_no_column_keeps_it_restricted(settings):
    """The self-map of ``renamed_fields`` (a column also rendered under its own name is
    known to that field's readers) took any field named like a column for a reader of it;
    a ``cost = SerializerMethodField()`` renders none of ``cost``, so a viewer from whom
    ``unit_cost`` (``source="cost"``) is hidden still filtered and sorted by ``cost``."""
    site = ResourceSite(name="computed-costs-site")
    site.register(ComputedCostResource)
    with site_mounted(settings, "cc", site):
        org = OrganizationFactory()
        ProductFactory(organization=org, sku="A", cost="3.00")
        ProductFactory(organization=org, sku="B", cost="9.00")
        viewer = member_client(org, "viewer")
        docs = viewer.get("/cc/computed-costs/?sort=name").json()["docs"]
        assert {d["cost"] for d in docs} == {"ask us"}
        assert "unit_cost" not in docs[0]
        for query, param in (("cost[gte]=5", "cost[gte]"), ("sort=-cost", "sort")):
            body = assert_error(viewer.get(f"/cc/computed-costs/?{query}"), 400, "INVALID_QUERY")
            assert list(body["details"]) == [param]
        r = member_client(org, "admin").get("/cc/computed-costs/?cost[gte]=5")
        assert [d["unit_cost"] for d in r.json()["docs"]] == ["9.00"]


class SwappedQueryResource(SwappedNamesResource):
    """Both columns listed for the query string: ``price`` (rendered as ``cost``, hidden
    from viewers) and ``cost`` (rendered as ``unit_cost`` to everyone)."""

    name = "swapped-query"
    filter_fields = {"price": ["gte", "eq"], "cost": ["gte", "eq"], "name": ["eq"]}
    sort_fields = ["price", "cost", "name"]
    search_fields = ["name"]


def test_swapped_names_rule_the_column_the_hidden_field_renders_not_its_name(settings):
    """The restricted set mixed field and column names: a viewer may not read the field
    ``cost`` (the ``price`` column), so the query string's ``cost`` — the column the viewer
    reads as ``unit_cost`` — was refused too (fix-seen6b). The query string names columns:
    ``price`` is refused to the viewer, ``cost`` is not; the admin has both; and the filter
    reads the viewer's own organization's rows only."""
    site = ResourceSite(name="swapped-query-site")
    site.register(SwappedQueryResource)
    with site_mounted(settings, "sq", site):
        org, other = OrganizationFactory(), OrganizationFactory()
        ProductFactory(organization=org, sku="A", price="3.00", cost="1.00")
        ProductFactory(organization=org, sku="B", price="9.00", cost="2.00")
        ProductFactory(organization=other, sku="C", price="8.00", cost="7.00")
        url = "/sq/swapped-query/"
        viewer = member_client(org, "viewer")
        # the column the viewer reads (as unit_cost): filtered and sorted, its own rows only
        r = viewer.get(f"{url}?cost[gte]=1.5")
        assert r.status_code == 200, r.json()
        assert [(d["sku"], d["unit_cost"], "cost" in d) for d in r.json()["docs"]] == [
            ("B", "2.00", False)
        ]
        r = viewer.get(f"{url}?sort=-cost&cost[gte]=0")
        assert [d["unit_cost"] for d in r.json()["docs"]] == ["2.00", "1.00"]
        r = viewer.get(f"{url}?cost=7.00")
        assert r.status_code == 200 and r.json()["docs"] == []  # another tenant's value
        r = viewer.get(f"{url}?limit=1&after=&sort=cost")
        assert r.status_code == 200, r.json()
        assert [d["sku"] for d in r.json()["docs"]] == ["A"]
        # the column the viewer may not read (rendered as cost): refused, whatever is asked
        for query, param in (
            ("price[gte]=5", "price[gte]"),
            ("price=9.00", "price"),
            ("sort=-price", "sort"),
            ("limit=1&after=&sort=price", "sort"),
        ):
            body = assert_error(viewer.get(f"{url}?{query}"), 400, "INVALID_QUERY")
            assert list(body["details"]) == [param], (query, body)
        # the admin reads both, and queries both
        admin = member_client(org, "admin")
        r = admin.get(f"{url}?price[gte]=5&cost[gte]=1.5&sort=-price")
        assert r.status_code == 200, r.json()
        assert [(d["cost"], d["unit_cost"]) for d in r.json()["docs"]] == [("9.00", "2.00")]
        # another organization's viewer queries its own rows by the same column
        r = member_client(other, "viewer").get(f"{url}?cost[gte]=1.5")
        assert [d["sku"] for d in r.json()["docs"]] == ["C"]


class UnrenderedCostSerializer(RenamedCostSerializer):
    """``unit_cost`` renders the ``cost`` column (restricted); ``cost_seed`` (a
    ``HiddenField``) and ``cost_in`` (write-only) name the column too but render nothing."""

    cost_seed = serializers.HiddenField(source="cost", default=None)
    cost_in = serializers.DecimalField(
        source="cost", max_digits=10, decimal_places=2, write_only=True, required=False
    )

    class Meta(RenamedCostSerializer.Meta):
        fields = [*RenamedCostSerializer.Meta.fields, "cost_seed", "cost_in"]


class UnrenderedCostResource(RenamedCostResource):
    name = "unrendered-costs"
    serializer_class = UnrenderedCostSerializer


def test_a_field_rendering_nothing_does_not_open_the_column_it_names(settings):
    """``restricted_columns`` (fix-seen6b) opens a column any field outside the caller's
    restricted ones renders, and counted a ``HiddenField`` and a write-only field, which
    render nothing: a viewer, from whom ``unit_cost`` (the ``cost`` column) is hidden,
    filtered and sorted by ``cost``, and the schema listed ``cost`` as open to all."""
    site = ResourceSite(name="unrendered-costs-site")
    site.register(UnrenderedCostResource)
    with site_mounted(settings, "uc", site):
        org = OrganizationFactory()
        ProductFactory(organization=org, sku="A", cost="3.00")
        ProductFactory(organization=org, sku="B", cost="9.00")
        url = "/uc/unrendered-costs/"
        viewer = member_client(org, "viewer")
        assert set(viewer.get(url).json()["docs"][0]) == {
            "id",
            "name",
            "sku",
            "price",
            "organization",
        }
        for query, param in (
            ("cost[gte]=5", "cost[gte]"),
            ("sort=-cost", "sort"),
            ("limit=1&after=&sort=cost", "sort"),
        ):
            body = assert_error(viewer.get(f"{url}?{query}"), 400, "INVALID_QUERY")
            assert list(body["details"]) == [param], (query, body)
        r = member_client(org, "admin").get(f"{url}?cost[gte]=5")
        assert [d["unit_cost"] for d in r.json()["docs"]] == ["9.00"]
    params = _schema_parameters(UnrenderedCostResource)
    assert "Refused (400) for callers who may not read `cost`" in params["cost"]["description"]


class SkuTailField(serializers.CharField):
    """The last two characters of the column: a view of it, not its value."""

    def to_representation(self, value):
        return str(value)[-2:]


class SkuTailSerializer(serializers.ModelSerializer):
    sku_tail = SkuTailField(source="sku", read_only=True)

    class Meta:
        model = Product
        fields = ["id", "name", "sku", "organization", "sku_tail"]


class SkuTailResource(RenamedCostResource):
    name = "sku-tails"
    serializer_class = SkuTailSerializer
    filter_fields = {"sku": ["eq", "startswith"], "name": ["eq"]}
    sort_fields = ["sku", "name"]
    default_sort = "name"
    field_permissions = {"sku": F.visible_to("admin")}


def test_a_field_hidden_under_its_own_column_name_stays_restricted_beside_a_view_of_it(
    settings,
):
    """``sku`` (its own column) is hidden from a viewer, who reads ``sku_tail``, a field
    rendering the column's last two characters under another name. fix-seen6b's
    ``restricted_columns`` opened every column a readable field renders, the hidden field's
    own name too: the viewer's ``?sku[startswith]=`` read the hidden prefix, character by
    character. A name a hidden field renders as its own column stays refused (arc cannot
    tell a field's view of a column from its value); a hidden field's name that renders
    another column is still opened to the column's reader (the swapped names above)."""
    site = ResourceSite(name="sku-tails-site")
    site.register(SkuTailResource)
    with site_mounted(settings, "st", site):
        org = OrganizationFactory()
        ProductFactory(organization=org, sku="SECRET-01")
        ProductFactory(organization=org, sku="OTHER-02")
        url = "/st/sku-tails/"
        viewer = member_client(org, "viewer")
        docs = viewer.get(url).json()["docs"]
        assert sorted(d["sku_tail"] for d in docs) == ["01", "02"] and "sku" not in docs[0]
        for query, param in (
            ("sku[startswith]=SEC", "sku[startswith]"),
            ("sku=SECRET-01", "sku"),
            ("sort=sku", "sort"),
            ("limit=1&after=&sort=sku", "sort"),
        ):
            body = assert_error(viewer.get(f"{url}?{query}"), 400, "INVALID_QUERY")
            assert list(body["details"]) == [param], (query, body)
        r = member_client(org, "admin").get(f"{url}?sku[startswith]=SEC")
        assert [d["sku"] for d in r.json()["docs"]] == ["SECRET-01"]
    params = _schema_parameters(SkuTailResource)
    assert "Refused (400) for callers who may not read `sku`" in params["sku"]["description"]


def test_the_schemas_select_leaves_out_a_swapped_name_some_callers_may_not_read():
    """``select`` lists only the fields every caller may read, and was judged by the
    restricted *columns* (fix-seen6b): with ``cost`` (rendering ``price``) hidden from
    viewers, the set held ``price``, not ``cost``, so the schema offered every caller
    ``?select=cost``, which a viewer is refused (400), and named no field that depends on the
    caller but ``price``, which is none."""
    import re

    params = _schema_parameters(SwappedQueryResource)
    pattern = params["select"]["schema"]["items"]["pattern"]
    assert re.match(pattern, "unit_cost") and re.match(pattern, "name")
    assert not re.match(pattern, "cost"), pattern
    assert "`cost`" in params["select"]["description"].split("(")[-1]
    assert "Refused (400) for callers who may not read `price`" in params["price"]["description"]
    assert "Refused" not in params["cost"]["description"]


class CostTailSerializer(RenamedCostSerializer):
    """``unit_cost`` renders the ``cost`` column (restricted); ``cost_tail`` renders a view
    of it to everyone (its last digit), not its value."""

    cost_tail = SkuTailField(source="cost", read_only=True)

    class Meta(RenamedCostSerializer.Meta):
        fields = [*RenamedCostSerializer.Meta.fields, "cost_tail"]


class CostTailResource(RenamedCostResource):
    name = "cost-tails"
    serializer_class = CostTailSerializer


def test_a_view_of_a_restricted_renamed_column_under_a_third_name_does_not_open_it(settings):
    """``unit_cost`` (the ``cost`` column) is hidden from a viewer, who reads ``cost_tail``,
    a field rendering the column's last characters under a third name. The column was
    opened to the viewer because a readable field renders it: ``?cost[gte]=`` and
    ``?sort=cost`` told the hidden value. A restricted field's column is opened only by a
    readable field named like it (``cost`` itself, as a field), not by a field of another
    name, which may render a view of it (arc cannot tell)."""
    site = ResourceSite(name="cost-tails-site")
    site.register(CostTailResource)
    with site_mounted(settings, "ct", site):
        org = OrganizationFactory()
        ProductFactory(organization=org, sku="A", cost="3.00")
        ProductFactory(organization=org, sku="B", cost="9.00")
        url = "/ct/cost-tails/"
        viewer = member_client(org, "viewer")
        docs = viewer.get(f"{url}?sort=name").json()["docs"]
        assert {d["cost_tail"] for d in docs} == {"00"} and "unit_cost" not in docs[0]
        for query, param in (
            ("cost[gte]=5", "cost[gte]"),
            ("sort=-cost", "sort"),
            ("limit=1&after=", "after"),
        ):
            body = assert_error(viewer.get(f"{url}?{query}"), 400, "INVALID_QUERY")
            assert list(body["details"]) == [param], (query, body)
        r = member_client(org, "admin").get(f"{url}?cost[gte]=5")
        assert [d["unit_cost"] for d in r.json()["docs"]] == ["9.00"]


# -- the schema's refusal note: hidden and write-only renames (fix-seen8b) -------------------


class Fs8bHiddenCostResource(RenamedCostResource):
    """``unit_cost`` (the ``cost`` column) is ``hidden()``: no caller reads it."""

    name = "fs8b-hidden-costs"
    field_permissions = {"unit_cost": F.hidden()}


class Fs8bWriteOnlyCostSerializer(RenamedCostSerializer):
    unit_cost = serializers.DecimalField(
        source="cost", max_digits=10, decimal_places=2, required=False, write_only=True
    )
    sku = serializers.CharField(write_only=True)


class Fs8bWriteOnlyCostResource(RenamedCostResource):
    """``unit_cost`` (the ``cost`` column) is write-only; so is ``sku``, as its own name,
    which ``price`` is restricted beside."""

    name = "fs8b-write-only-costs"
    serializer_class = Fs8bWriteOnlyCostSerializer
    filter_fields = {"cost": ["gte", "eq"], "name": ["eq"], "price": ["eq"]}
    field_permissions = {"price": F.visible_to("admin")}


@pytest.mark.parametrize(
    "resource", [Fs8bHiddenCostResource, Fs8bWriteOnlyCostResource], ids=["hidden", "write-only"]
)
def test_the_schema_offers_no_filter_or_sort_every_caller_is_refused(settings, resource):
    """The query string's column of a ``hidden()`` or write-only field renamed from it is
    refused to every caller (``FieldAccess.restricted`` maps each caller's unreadable fields,
    hidden and write-only ones included, to their columns), yet the schema documented
    ``cost`` and ``cost[gte]``, and ``cost`` as a sort key and the default order, with no
    word of a refusal: it judged only the fields some callers may read. What no caller may
    use is not in the schema, as a hidden field's own column is not; what some callers may
    is documented with its note."""
    site = ResourceSite(name=f"{resource.name}-site")
    site.register(resource)
    with site_mounted(settings, "fs8b", site):
        org = OrganizationFactory()
        ProductFactory(organization=org, sku="A", cost="3.00", price="1.00")
        admin = member_client(org, "admin")
        for query, param in (
            ("cost[gte]=1", "cost[gte]"),
            ("cost=3", "cost"),
            ("sort=cost", "sort"),
        ):
            body = assert_error(admin.get(f"/fs8b/{resource.name}/?{query}"), 400, "INVALID_QUERY")
            assert list(body["details"]) == [param]
    params = _schema_parameters(resource)
    assert not any(n.startswith("cost") for n in params), sorted(params)
    assert "`cost`" not in params["sort"]["description"]
    assert "cost" not in json.dumps(params["sort"]["schema"])
    assert "Refused" not in params["name"]["description"]
    if resource is Fs8bWriteOnlyCostResource:
        assert (
            "Refused (400) for callers who may not read `price`" in params["price"]["description"]
        )
