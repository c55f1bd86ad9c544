"""A client walking a whole list, page by page, to export or sync it: every row it may see
comes exactly once, in the order ``?sort=`` promises (NULLs last in both directions, the
primary key breaking ties), through offset pages (``?page=&limit=``) and keyset pages
(``?after=``) alike, on SQLite and PostgreSQL."""

import base64
import datetime as dt
import functools
import json
import uuid
from decimal import Decimal

import pytest
from django.db import connection, models, transaction
from django.test.utils import isolate_apps
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from django_arc import Resource, presets
from django_arc import permissions as P
from tests.budget import examples
from tests.test_extension_points import mounted_site
from tests.testapp.models import Breed, PagedRow, Species

pytestmark = pytest.mark.django_db

PUBLIC = {"list": P.allow_public(), "get": P.allow_public()}
SORTS = [
    "id",
    "label",
    "rank",
    "amount",
    "ratio",
    "day",
    "at",
    "clock",
    "length",
    "flag",
    "token",
    "parent",
    "parent__label",
]


class PagedRows(Resource):
    model = PagedRow
    name = "paged-rows"
    fields = ["id", *SORTS[1:-1]]
    sort_fields = SORTS
    permissions = PUBLIC


class Breeds(Resource):
    model = Breed
    name = "breeds"
    fields = ["id", "name", "size"]
    sort_fields = ["name", "size"]
    permissions = PUBLIC


class BulkBreeds(Breeds):
    name = "bulk-breeds"
    filter_fields = {"size": ["eq"]}
    presets = [presets.Bulk()]
    permissions = {**PUBLIC, "update": P.allow_public()}


class SpeciesList(Resource):
    model = Species
    name = "species"
    fields = ["id", "name"]
    sort_fields = ["name", "breed"]
    permissions = PUBLIC


@pytest.fixture
def site(settings):
    with mounted_site(settings, "walk", PagedRows, Breeds, BulkBreeds, SpeciesList):
        yield


def walk_offset(api, url, limit):
    """Every page from 1 while ``hasNext``; ``total``/``pages``/``hasPrev`` checked on each."""
    seen, page = [], 1
    while True:
        r = api.get(f"{url}&limit={limit}&page={page}")
        assert r.status_code == 200, r.content
        body = r.json()
        assert body["page"] == page and body["limit"] == limit
        assert body["pages"] == -(-body["total"] // limit)
        assert body["hasPrev"] is (page > 1)
        assert body["hasNext"] is (page < body["pages"])
        assert len(body["docs"]) == (min(limit, body["total"] - (page - 1) * limit))
        seen += [d["id"] for d in body["docs"]]
        if not body["hasNext"]:
            assert len(seen) == body["total"]
            return seen
        page += 1


def walk_keyset(api, url, limit):
    """``?after=`` (empty), then each ``next`` while ``hasNext``."""
    seen, after = [], ""
    while True:
        r = api.get(f"{url}&limit={limit}&after={after}")
        assert r.status_code == 200, r.content
        body = r.json()
        assert len(body["docs"]) <= limit
        assert body["hasNext"] is (body["next"] is not None)
        assert body["docs"] or not body["hasNext"]
        seen += [d["id"] for d in body["docs"]]
        if not body["hasNext"]:
            return seen
        after = body["next"]


def expected_order(rows, sort):
    """``rows`` (dicts as read back) in ``sort``'s order as documented: each key ascending or
    descending with NULLs last either way, then the primary key ascending."""

    def compare(a, b):
        for part in sort.split(","):
            desc, name = part.startswith("-"), part.lstrip("-")
            x, y = a[name], b[name]
            if x == y:
                continue
            if x is None or y is None:
                return 1 if x is None else -1
            return (1 if x > y else -1) * (-1 if desc else 1)
        return (a["id"] > b["id"]) - (a["id"] < b["id"])

    return [r["id"] for r in sorted(rows, key=functools.cmp_to_key(compare))]


@pytest.mark.parametrize("sort", ["", "name", "-size", "size,-name"])
def test_a_multi_table_child_of_an_ordered_parent_is_paged_by_its_own_key(api, site, sort):
    """A multi-table child's primary key (``species_ptr``) is a relation to its parent, and
    Django orders a relation by the related model's ``Meta.ordering``: the tie-breaker
    ``ORDER BY species_ptr`` was ``ORDER BY species.name``, which ties. Offset pages
    repeated and skipped rows, and keyset pages, which compare the key itself, more so
    (``[2, 4, 6, 8, 10, 7, 8, 10, 9]`` for ten rows). The key breaks ties by its own value."""
    for i in range(10):
        Breed.objects.create(name="ab"[i % 2], size=i % 3)
    rows = list(Breed.objects.values("id", "name", "size"))
    expected = expected_order(rows, sort) if sort else sorted(r["id"] for r in rows)
    url = f"/walk/breeds/?select=id&sort={sort}"
    assert walk_offset(api, url, 3) == expected
    assert walk_keyset(api, url, 3) == expected


def test_a_bulk_update_by_filter_of_a_multi_table_child_goes_in_key_order(api, site):
    """A bulk update by ``filter`` takes its rows in key order, which for the child of an
    ordered parent was the parent's ``name`` order (``"ids": [2, 4, 6, 1, 3, 5]``)."""
    for i in range(6):
        Breed.objects.create(name="ba"[i % 2], size=1)
    body = {"filter": {"size": 1}, "data": {"size": 2}}
    r = api.patch("/walk/bulk-breeds/bulk/", body, format="json")
    assert r.status_code == 200, r.content
    keys = sorted(Breed.objects.values_list("pk", flat=True))
    assert r.json()["data"] == {"updated": 6, "ids": keys}


def test_a_sort_by_a_reverse_one_to_one_has_offset_pages_not_cursor_pages(api, site):
    """``sort_fields`` may name a reverse one-to-one relation (``breed`` of a species: no
    check refuses it, and offset pages sort by the related key, NULLs last). Its value is
    not a column of the row, so a keyset cursor cannot hold it: ``?after=`` read the related
    object into the cursor, a 500 (``Breed is not JSON serializable``, or
    ``RelatedObjectDoesNotExist`` for a species without one). It is the 400 of a sort by a
    related field, naming ``after``."""
    plain = [Species.objects.create(name=f"s{i}").pk for i in range(2)]
    breeds = [Breed.objects.create(name=f"b{i}").pk for i in range(2)]
    for sort, order in (("breed", breeds + plain), ("-breed", breeds[::-1] + plain)):
        assert walk_offset(api, f"/walk/species/?select=id&sort={sort}", 1) == order
        for after in ("", "eyJzIjoiYnJlZWQiLCJ2IjpbMSwxXX0"):
            r = api.get(f"/walk/species/?sort={sort}&after={after}")
            assert r.status_code == 400, r.content
            assert r.json()["details"] == {"after": "cursor pagination cannot sort by 'breed'"}


@pytest.mark.parametrize("sort", ["rank", "-rank", "rank,-id"])
def test_a_cursor_follows_a_row_its_columns_validators_would_refuse(api, site, sort):
    """Django runs a field's ``validators`` in ``full_clean()`` only: a script, an import or
    a validator tightened later leaves rows outside them (``rank`` is 0-9; rows hold -1 and
    12). A cursor holds the last row's values, and reading it ran the validators: the walk
    ended in a 400 "invalid cursor" at the first such row, on every database. A cursor's
    values are what rows hold, as for an integer beyond its column's portable range."""
    for rank in (-1, 0, 12, 5, 12, None):
        PagedRow.objects.create(rank=rank)
    rows = list(PagedRow.objects.values("id", "rank"))
    expected = expected_order(rows, sort)
    url = f"/walk/paged-rows/?select=id&sort={sort}"
    assert walk_keyset(api, url, 1) == walk_offset(api, url, 1) == expected


@pytest.mark.parametrize("value", ["1E+100000", "12345.6", "0.001"])
def test_a_cursor_decimal_the_column_cannot_hold_is_still_400(api, site, value):
    """A cursor decimal the column cannot hold (no row holds one) is still a bad cursor, as
    decisions.md says of values the columns cannot hold: only the project's validators no
    longer judge a cursor."""
    PagedRow.objects.create(amount=1)
    forged = base64.urlsafe_b64encode(
        json.dumps({"s": "amount", "v": [value, 1]}).encode()
    ).decode()
    r = api.get(f"/walk/paged-rows/?sort=amount&after={forged}")
    assert r.status_code == 400, r.content
    assert r.json()["details"] == {"after": "invalid cursor"}


@pytest.mark.parametrize("sort", ["label", "-label", "rank,-label"])
def test_a_cursor_holds_a_nul_character_where_the_database_holds_one(api, site, sort):
    """A row written outside the API (a script, an import) may hold a NUL character in a
    text column on SQLite, and the cursor after it holds it too: reading the cursor refused
    it as a filter value is refused (PostgreSQL text cannot hold NUL), so the walk ended in
    a 400 "invalid cursor" at that row. A cursor round-trips what the database holds; on
    PostgreSQL, where no row holds one, a cursor holding one is still a bad cursor (it
    would be the driver's error, a 500)."""
    from django.db import connection

    if connection.vendor == "postgresql":
        PagedRow.objects.create(label="a", rank=1)
        values = {"label": ["a\x00b", 1], "-label": ["a\x00b", 1], "rank,-label": [1, "a\x00", 1]}
        forged = base64.urlsafe_b64encode(
            json.dumps({"s": sort, "v": values[sort]}).encode()
        ).decode()
        r = api.get(f"/walk/paged-rows/?sort={sort}&after={forged}")
        assert r.status_code == 400, r.content
        assert r.json()["details"] == {"after": "invalid cursor"}
        return
    for label, rank in (("a", 1), ("a\x00b", 1), ("a\x00", 2), ("b", 1), (None, 2), ("a\x00b", 2)):
        PagedRow.objects.create(label=label, rank=rank)
    rows = list(PagedRow.objects.values("id", "label", "rank"))
    assert sum("\x00" in (r["label"] or "") for r in rows) == 3  # the database holds them
    expected = expected_order(rows, sort)
    url = f"/walk/paged-rows/?select=id&sort={sort}"
    assert walk_keyset(api, url, 1) == walk_offset(api, url, 1) == expected


@pytest.mark.parametrize("sort", ["label", "-label", "rank,-label"])
def test_a_keyset_walk_outlives_the_cursors_row_and_rows_written_meanwhile(api, site, sort):
    """docs/query-language.md, "Walking a whole list": a cursor holds values, not a row, so
    the walk goes on past a row deleted after its page was read (the cursor's own row
    included), and rows inserted or deleted meanwhile shift no other row: every row that
    exists for the whole walk comes exactly once."""
    initial = {PagedRow.objects.create(label="abcd"[i % 4], rank=i % 3).pk for i in range(8)}
    url = f"/walk/paged-rows/?select=id&sort={sort}"
    first = api.get(f"{url}&limit=3&after=").json()
    seen = [d["id"] for d in first["docs"]]
    PagedRow.objects.filter(pk=seen[-1]).delete()  # the cursor's row
    PagedRow.objects.create(label="a", rank=0)  # sorts before the cursor or after it
    gone = PagedRow.objects.exclude(pk__in=seen).order_by("pk").first()
    gone.delete()  # a row not yet read
    rest = walk_keyset_from(api, url, 3, first["next"])
    kept = set(PagedRow.objects.values_list("pk", flat=True))
    assert len(seen + rest) == len(set(seen + rest))
    survivors = initial & kept  # the rows that existed for the whole walk
    assert len(survivors - set(seen)) == 4  # 8, less the first page (3), less one unread
    assert survivors - set(seen) <= set(rest) <= kept


def walk_keyset_from(api, url, limit, after):
    seen = []
    while after:
        r = api.get(f"{url}&limit={limit}&after={after}")
        assert r.status_code == 200, r.content
        seen += [d["id"] for d in r.json()["docs"]]
        after = r.json()["next"]
    return seen


def maybe(values):
    return st.none() | st.sampled_from(values)


UTC = dt.UTC
row_values = st.fixed_dictionaries(
    {
        "label": maybe(["", "a", "b", "ab"]),
        # -1 and 12 break the column's validators (0-9): rows written past full_clean()
        "rank": maybe([-1, 0, 1, 9, 12]),
        "amount": maybe([Decimal("-1.50"), Decimal("0.00"), Decimal("2.25"), Decimal("2.30")]),
        "ratio": maybe([-0.5, -0.0, 0.0, 1.25, 1e-7]),
        "day": maybe([dt.date(1999, 12, 31), dt.date(2024, 2, 29)]),
        "at": maybe(
            [
                dt.datetime(2024, 1, 1, 12, 0, tzinfo=UTC),
                dt.datetime(2024, 1, 1, 12, 0, 0, 1, tzinfo=UTC),
                dt.datetime(2024, 1, 1, 12, 0, 0, 999999, tzinfo=UTC),
                dt.datetime(1970, 1, 1, tzinfo=UTC),
            ]
        ),
        "clock": maybe([dt.time(0, 0), dt.time(0, 0, 0, 5), dt.time(23, 59, 59, 999999)]),
        "length": maybe(
            [
                dt.timedelta(0),
                dt.timedelta(microseconds=1),
                dt.timedelta(days=-1, seconds=5),
                dt.timedelta(days=3, microseconds=250),
            ]
        ),
        "flag": maybe([True, False]),
        "token": maybe(
            [
                uuid.UUID(int=0),
                uuid.UUID(int=2**127),
                uuid.UUID("0fffffff-ffff-4fff-bfff-ffffffffffff"),
            ]
        ),
        "parent": st.none() | st.integers(min_value=0, max_value=20),
    }
)
sort_keys = st.lists(st.sampled_from(SORTS), min_size=1, max_size=3, unique=True).flatmap(
    lambda names: st.tuples(*[st.sampled_from([n, f"-{n}"]) for n in names]).map(",".join)
)


def create_rows(values):
    created = []
    for data in values:
        parent = data["parent"]
        data = {
            **data,
            "parent": created[parent] if parent is not None and parent < len(created) else None,
        }
        # through the ORM, as a script or an import writes them: no full_clean()
        created.append(PagedRow.objects.create(**data))
    rows = list(PagedRow.objects.values("id", *SORTS[1:-1]))
    labels = {r["id"]: r["label"] for r in rows}
    for r in rows:
        r["parent__label"] = labels.get(r["parent"])
    return rows


@hypothesis_settings(
    max_examples=examples(150),
    deadline=None,
    # the same examples on every run, as the suite's other property tests: `make test`
    # answers the same for the same code (a failure is reproduced by running it again)
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(
    values=st.lists(row_values, max_size=14),
    sort=sort_keys,
    limit=st.integers(min_value=1, max_value=5),
)
def test_walking_every_page_lists_every_row_once_in_the_sorts_order(api, site, values, sort, limit):
    """For rows full of ties and NULLs of every sortable type and any ``?sort=`` (one to
    three keys, either direction), the offset walk and the keyset walk both list every row
    exactly once, in the documented order. A sort through a relation (``parent__label``) has
    no keyset pages: a 400 naming ``after``, never a 500."""
    savepoint = transaction.savepoint()
    try:
        rows = create_rows(values)
        url = f"/walk/paged-rows/?select=id&sort={sort}"
        expected = expected_order(rows, sort)
        assert walk_offset(api, url, limit) == expected
        if "parent__label" in sort:
            r = api.get(f"{url}&after=")
            assert r.status_code == 400 and "after" in r.json()["details"], r.content
        else:
            assert walk_keyset(api, url, limit) == expected
    finally:
        transaction.savepoint_rollback(savepoint)


class SpeciesByBreed(Resource):
    """A default sort by a reverse one-to-one, which ``sort_fields`` does not list."""

    model = Species
    name = "species-by-breed"
    fields = ["id", "name"]
    sort_fields = ["name"]
    default_sort = "breed"
    permissions = PUBLIC


def test_the_after_parameter_names_a_default_sort_it_cannot_page(api, settings):
    """A list whose ``default_sort`` a cursor cannot follow (``breed``, a reverse one-to-one;
    a related model's column alike) answers ``?after=`` without a ``sort`` with a 400 naming
    ``after``; the ``after`` parameter named only the ``sort_fields`` a cursor cannot follow
    (c5aae13), so this list's schema said nothing and a client met the 400 first. It names
    the default sort too; a ``sort`` by ``name`` still pages by cursor."""
    from drf_spectacular.generators import SchemaGenerator

    with mounted_site(settings, "walk", SpeciesByBreed):
        r = api.get("/walk/species-by-breed/?after=")
        assert r.status_code == 400, r.content
        assert r.json()["details"] == {"after": "cursor pagination cannot sort by 'breed'"}
        assert api.get("/walk/species-by-breed/?sort=name&after=").status_code == 200
        schema = SchemaGenerator().get_schema(request=None, public=True)
    parameters = schema["paths"]["/walk/species-by-breed/"]["get"]["parameters"]
    after = next(p for p in parameters if p["name"] == "after")["description"]
    assert after.endswith(
        "Without a `sort`, the default sort by `breed` has offset pages only (400 naming `after`)."
    )


class PlainTextField(models.Field):
    """A project's text column subclassing ``models.Field`` directly (as a case-insensitive
    or collated text type may): text by its ``get_internal_type()``, no ``CharField``."""

    def get_internal_type(self):
        return "TextField"


@pytest.fixture
def memos(settings, transactional_db):
    """A table with a :class:`PlainTextField` column for one test, listed publicly."""
    with isolate_apps("tests.testapp"):

        class PlainTextMemo(models.Model):
            body = PlainTextField(null=True)

            class Meta:
                app_label = "testapp"

    class Memos(Resource):
        model = PlainTextMemo
        name = "memos"
        fields = ["id", "body"]
        sort_fields = ["body"]
        permissions = PUBLIC

    with connection.schema_editor() as editor:
        editor.create_model(PlainTextMemo)
    try:
        with mounted_site(settings, "memo", Memos):
            yield PlainTextMemo
    finally:
        with connection.schema_editor() as editor:
            editor.delete_model(PlainTextMemo)


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("sort", ["body", "-body"])
def test_a_cursor_holds_a_nul_in_a_text_column_of_a_custom_field_type(api, memos, sort):
    """The cursor's NUL is read as the rows' own text only in a text column, which was told
    by class (``CharField``/``TextField``): a project's text field subclassing
    ``models.Field`` directly (its ``get_internal_type()`` is ``"TextField"``) ended the walk
    in a 400 "invalid cursor" at a row holding a NUL on SQLite. It is told by its internal
    type; on PostgreSQL, whose text holds no NUL, a cursor holding one stays a 400."""
    if connection.vendor == "postgresql":
        memos.objects.create(body="a")
        forged = base64.urlsafe_b64encode(
            json.dumps({"s": sort, "v": ["a\x00b", 1]}).encode()
        ).decode()
        r = api.get(f"/memo/memos/?sort={sort}&after={forged}")
        assert r.status_code == 400, r.content
        assert r.json()["details"] == {"after": "invalid cursor"}
        return
    for body in ("a", "a\x00b", "a\x00", "b", None, "a\x00b"):
        memos.objects.create(body=body)
    rows = list(memos.objects.values("id", "body"))
    assert sum("\x00" in (r["body"] or "") for r in rows) == 3  # the database holds them
    expected = expected_order(rows, sort)
    url = f"/memo/memos/?select=id&sort={sort}"
    assert walk_keyset(api, url, 1) == walk_offset(api, url, 1) == expected


NON_FINITE = [float("inf"), float("-inf"), float("nan")]


@pytest.mark.parametrize("sort", ["ratio", "-ratio", "id"])
def test_rows_holding_non_finite_floats_render_null_and_walk(api, site, sort):
    """A float column of a row written outside the API may hold an infinity (PostgreSQL and
    SQLite) or NaN (PostgreSQL; SQLite stores it as NULL): JSON has neither, and DRF's
    strict renderer raised, so every page, detail and walk holding the row was a 500 (an
    HTML page, not the envelope). Such a value renders as ``null`` (docs/decisions.md), and a
    walk sorted by the column goes past it, keyset and offset alike, in the database's
    order (the cursor holds the value the row holds, as for a NUL)."""
    ids = [PagedRow.objects.create(label=str(i), ratio=v).pk for i, v in enumerate(NON_FINITE)]
    ids += [PagedRow.objects.create(label="x", ratio=r).pk for r in (1.5, None, -2.0)]
    r = api.get("/walk/paged-rows/?select=id,ratio&limit=50")
    assert r.status_code == 200, r.content
    ratios = {d["id"]: d["ratio"] for d in r.json()["docs"]}
    assert [ratios[pk] for pk in ids] == [None, None, None, 1.5, None, -2.0]
    r = api.get(f"/walk/paged-rows/{ids[0]}/")
    assert r.status_code == 200 and r.json()["data"]["ratio"] is None
    url = f"/walk/paged-rows/?select=id&sort={sort}"
    walked = walk_keyset(api, url, 1)
    assert walked == walk_offset(api, url, 1)
    assert sorted(walked) == sorted(ids)
    in_database_order = list(
        PagedRow.objects.order_by(
            *(
                [models.F("ratio").desc(nulls_last=True), "id"]
                if sort == "-ratio"
                else [models.F(sort).asc(nulls_last=True), "id"]
            )
        ).values_list("id", flat=True)
    )
    assert walked == in_database_order


@pytest.mark.parametrize("sort", ["amount", "-amount"])
def test_a_keyset_walk_goes_past_a_numeric_nan(api, site, sort):
    """PostgreSQL's ``numeric`` holds ``NaN`` (written outside the API; it renders as
    ``null``): the cursor after such a row held ``"NaN"``, which Django's ``DecimalField``
    refuses (``to_python()``), so the walk ended there in a 400 "invalid cursor". The cursor
    holds it as the float's does, compared as the column's own NaN (PostgreSQL sorts it above
    every number). SQLite's decimal column cannot be given one: a forged cursor holding it
    is answered, not a 500."""
    ids = [
        PagedRow.objects.create(label="x", amount=a).pk
        for a in (Decimal("1.00"), None, Decimal("2.00"), Decimal("3.00"), Decimal("2.00"))
    ]
    url = f"/walk/paged-rows/?select=id,amount&sort={sort}"
    if connection.vendor != "postgresql":
        forged = base64.urlsafe_b64encode(
            json.dumps({"s": sort, "v": ["NaN", ids[0]]}).encode()
        ).decode()
        r = api.get(f"{url}&limit=1&after={forged}")
        assert r.status_code in (200, 400), r.content
        return
    with connection.cursor() as cursor:
        table = PagedRow._meta.db_table
        cursor.execute(f"UPDATE {table} SET amount = 'NaN' WHERE id IN (%s, %s)", ids[2:4])
    r = api.get(f"/walk/paged-rows/{ids[2]}/")
    assert r.status_code == 200 and r.json()["data"]["amount"] is None, r.content
    walked = walk_keyset(api, url, 1)
    assert walked == walk_offset(api, url, 1)
    order = (
        models.F("amount").desc(nulls_last=True)
        if sort == "-amount"
        else models.F("amount").asc(nulls_last=True)
    )
    assert walked == list(PagedRow.objects.order_by(order, "id").values_list("id", flat=True))
    # NaN above every number: last of the numbers ascending, first descending
    nan_at = [walked.index(ids[2]), walked.index(ids[3])]
    assert nan_at == ([2, 3] if sort == "amount" else [0, 1])
