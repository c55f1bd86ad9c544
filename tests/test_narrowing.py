"""``narrow()`` adds plain column conditions without ``filter()``: it must build exactly what
``filter()`` builds (same SQL, same parameters), and hand everything else to ``filter()``."""

import datetime
import threading
import uuid

import pytest
from django.db import NotSupportedError, models
from django.db.models import Count, Q
from django.db.models.lookups import Exact
from django.test import override_settings
from django.test.utils import isolate_apps, register_lookup

from django_arc import narrowing
from django_arc.narrowing import narrow
from shop.models import Organization
from tests.testapp.models import Article, Author, Book


def sql(queryset):
    return queryset.query.sql_with_params()


@pytest.fixture
def filter_calls(monkeypatch):
    """The conditions ``narrow()`` handed to ``QuerySet.filter``."""
    calls = []
    original = models.QuerySet.filter

    def spy(self, *args, **kwargs):
        calls.append((args, kwargs))
        return original(self, *args, **kwargs)

    monkeypatch.setattr(models.QuerySet, "filter", spy)
    return calls


PLAIN = [
    ("fk attname", Article, {"organization_id": 5}),
    ("fk name", Article, {"organization": 5}),
    ("fk value as text", Article, {"organization": "5"}),
    ("isnull true", Article, {"deleted_at__isnull": True}),
    ("isnull false", Article, {"deleted_at__isnull": False}),
    ("pk", Article, {"pk": 3}),
    ("pk as text", Article, {"pk": "3"}),
    ("explicit exact", Article, {"slug__exact": "hello"}),
    ("several", Article, {"organization_id": 5, "owner_id": 7, "deleted_at__isnull": True}),
    ("uuid as text", Book, {"uid": "12345678-1234-5678-1234-567812345678"}),
    ("uuid", Book, {"uid": uuid.UUID(int=7)}),
    ("date as text", Book, {"published": "2026-01-02"}),
    ("date", Book, {"published": datetime.date(2026, 1, 2)}),
    ("decimal as text", Book, {"price": "9.50"}),
    ("boolean", Book, {"is_available": False}),
    ("nested and", Article, Q(Q(organization_id=5) & Q(deleted_at__isnull=True))),
]


@pytest.mark.parametrize("remember", [False, True], ids=["built", "remembered"])
@pytest.mark.parametrize("label, model, condition", PLAIN, ids=[c[0] for c in PLAIN])
def test_a_plain_column_condition_builds_what_filter_builds_without_filter(
    label, model, condition, remember, filter_calls
):
    queryset = model.objects.all()
    expected = sql(queryset.filter(condition if isinstance(condition, Q) else Q(**condition)))
    filter_calls.clear()
    first = narrow(queryset, condition, remember=remember)
    again = narrow(queryset, condition, remember=remember)  # remembered the first time
    assert filter_calls == []
    assert sql(first) == sql(again) == expected
    assert "WHERE" not in str(queryset.query)  # a new queryset, the old one untouched


@pytest.fixture
def remembered(monkeypatch):
    """The process's remembered lookups, empty for the test."""
    memo = {}
    monkeypatch.setattr(narrowing, "_remembered", memo)
    return memo


def test_each_query_gets_its_own_copy_of_a_remembered_lookup(remembered):
    queryset = Article.objects.all()
    first = narrow(queryset, {"organization_id": 5}, remember=True)
    second = narrow(queryset, {"organization_id": 5}, remember=True)
    assert len(remembered) == 1
    one, other = first.query.where.children[0], second.query.where.children[0]
    assert one is not other
    one.rhs = 6  # what a query does to its own lookup stays in that query
    assert sql(second) == sql(queryset.filter(organization_id=5))
    assert sql(narrow(queryset, {"organization_id": 5}, remember=True))[1] == (5,)


def test_two_tenants_never_share_a_remembered_condition(remembered):
    queryset = Article.objects.all()
    for _ in range(2):
        assert sql(narrow(queryset, {"organization_id": 1}, remember=True))[1] == (1,)
        assert sql(narrow(queryset, {"organization_id": 2}, remember=True))[1] == (2,)
    assert len(remembered) == 2


def test_equal_values_of_other_types_are_remembered_apart(remembered):
    queryset = Book.objects.all()
    narrow(queryset, {"is_available": True}, remember=True)
    narrow(queryset, {"is_available": 1}, remember=True)
    assert sorted(type(key[-1]).__name__ for key in remembered) == ["bool", "int"]


def test_values_of_other_types_and_unremembered_conditions_are_built_anew(remembered):
    queryset = Book.objects.all()
    narrow(queryset, {"published": datetime.date(2026, 1, 2)}, remember=True)
    narrow(queryset, {"price": "9.50"})  # remember not asked
    assert remembered == {}


def test_remembered_lookups_are_bounded(remembered, monkeypatch):
    monkeypatch.setattr(narrowing, "MAX_REMEMBERED", 3)
    queryset = Article.objects.all()
    for org in range(1, 8):
        narrowed = narrow(queryset, {"organization_id": org}, remember=True)
        assert sql(narrowed)[1] == (org,)
        assert len(remembered) <= 3


def test_threads_remembering_and_forgetting_at_once_keep_their_own_values(remembered, monkeypatch):
    """Four threads narrow by their own tenant at once, with room for two lookups, so the
    memo is cleared under them again and again: every query keeps its own thread's value."""
    monkeypatch.setattr(narrowing, "MAX_REMEMBERED", 2)
    queryset = Article.objects.all()
    wrong = []

    def work(org):
        for _ in range(300):
            params = sql(narrow(queryset, {"organization_id": org}, remember=True))[1]
            if params != (org,):
                wrong.append((org, params))

    threads = [threading.Thread(target=work, args=(org,)) for org in range(1, 5)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert wrong == []
    assert len(remembered) <= 2


def test_a_lookup_registered_later_is_the_one_used(remembered):
    class ShoutedExact(Exact):
        def get_prep_lookup(self):
            return super().get_prep_lookup().upper()

    queryset = Article.objects.all()
    assert sql(narrow(queryset, {"slug": "hello"}, remember=True))[1] == ("hello",)
    with register_lookup(models.SlugField, ShoutedExact, lookup_name="exact"):
        assert sql(narrow(queryset, {"slug": "hello"}, remember=True))[1] == ("HELLO",)
    assert sql(narrow(queryset, {"slug": "hello"}, remember=True))[1] == ("hello",)


def test_a_changed_setting_forgets_what_was_remembered(remembered):
    narrow(Article.objects.all(), {"organization_id": 5}, remember=True)
    assert remembered
    with override_settings(TIME_ZONE="Asia/Tokyo"):
        assert remembered == {}


def test_a_value_the_column_cannot_hold_is_refused_every_time_and_never_remembered(remembered):
    for _ in range(2):
        with pytest.raises(ValueError):
            narrow(Article.objects.all(), {"organization_id": "abc"}, remember=True)
    assert remembered == {}


def test_several_conditions_and_a_get_build_what_filter_builds(filter_calls):
    queryset = Article.objects.all()
    expected = sql(
        queryset.filter(Q(organization_id=5), Q(deleted_at__isnull=True)).filter(Q(owner_id=2))
    )
    narrowed = narrow(
        narrow(queryset, Q(organization_id=5), Q(deleted_at__isnull=True)), {"owner_id": 2}
    )
    assert sql(narrowed) == expected


class _Annotated:
    @staticmethod
    def queryset():
        return Author.objects.annotate(book_total=Count("books"))


OTHER = [
    ("relation path", Article, Q(organization__name="acme")),
    ("other lookup", Article, Q(title__icontains="x")),
    ("transform", Book, Q(published__year=2026)),
    ("in list", Article, Q(pk__in=[1, 2])),
    ("none value", Article, Q(owner=None)),
    ("or", Article, Q(organization_id=5) | Q(organization_id=6)),
    ("negated", Article, ~Q(organization_id=5)),
    ("expression value", Book, Q(pages=models.F("pages"))),
]


@pytest.mark.parametrize("label, model, condition", OTHER, ids=[c[0] for c in OTHER])
def test_anything_else_goes_through_filter(label, model, condition, filter_calls):
    queryset = model.objects.all()
    expected = sql(queryset.filter(condition))
    filter_calls.clear()
    narrowed = narrow(queryset, condition)
    assert len(filter_calls) == 1
    assert sql(narrowed) == expected


@pytest.mark.parametrize(
    "condition",
    [Q(books=3), Q(books__title="x") | Q(books__title="y"), {"books__title__startswith": "x"}],
    ids=["reverse relation", "or through it", "a lookup through it"],
)
def test_a_condition_through_a_multi_valued_relation_is_a_subquery(condition, filter_calls):
    """A condition through a reverse foreign key or a many-to-many relation joined one row
    per matching related row (an author with two such books was read twice, and a lookup
    of it found two rows): the rows it lets through are asked in one subquery of the
    model's, and the queryset itself joins nothing (rev-fixes54)."""
    q = condition if isinstance(condition, Q) else Q(**condition)
    inner = Author._base_manager.filter(q).values("pk")
    expected = sql(Author.objects.filter(pk__in=inner))
    filter_calls.clear()
    narrowed = narrow(Author.objects.all(), condition)
    assert sql(narrowed) == expected
    assert [args for args, _ in filter_calls] == [(q,), ()]


@pytest.mark.parametrize(
    "condition",
    [Q(book_total__gt=0, books__title="x"), Q(books__pages__gt=models.F("book_total"))],
    ids=["named", "compared with"],
)
def test_a_multi_valued_condition_with_an_annotation_goes_through_filter(condition, filter_calls):
    """A subquery over the model would not know the queryset's annotation: ``filter()``."""
    queryset = _Annotated.queryset()
    expected = sql(queryset.filter(condition))
    filter_calls.clear()
    assert sql(narrow(queryset, condition)) == expected
    assert len(filter_calls) == 1


def test_an_isnull_value_not_a_boolean_goes_through_filter(filter_calls):
    narrowed = narrow(Article.objects.all(), {"deleted_at__isnull": "yes"})
    assert len(filter_calls) == 1
    with pytest.raises(ValueError, match="must be True or False"):
        sql(narrowed)


@pytest.mark.django_db
def test_a_model_instance_value_goes_through_filter(filter_calls):
    org = Organization.objects.create(name="acme", slug="acme")
    expected = sql(Article.objects.filter(organization=org))
    filter_calls.clear()
    assert sql(narrow(Article.objects.all(), {"organization": org})) == expected
    assert len(filter_calls) == 1


def test_an_annotation_name_goes_through_filter(filter_calls):
    queryset = _Annotated.queryset()
    expected = sql(queryset.filter(book_total=2))
    filter_calls.clear()
    assert sql(narrow(queryset, {"book_total": 2})) == expected
    assert len(filter_calls) == 1


@isolate_apps("tests.testapp")
def test_a_field_of_a_concrete_parent_goes_through_filter(filter_calls):
    class Place(models.Model):
        city = models.CharField(max_length=20)

        class Meta:
            app_label = "testapp"

    class Shop(Place):
        kind = models.CharField(max_length=20)

        class Meta:
            app_label = "testapp"

    expected_parent = sql(Shop.objects.filter(city="Oslo"))
    expected_own = sql(Shop.objects.filter(kind="tea", pk=4))
    filter_calls.clear()
    assert sql(narrow(Shop.objects.all(), {"city": "Oslo"})) == expected_parent
    assert len(filter_calls) == 1
    filter_calls.clear()
    assert sql(narrow(Shop.objects.all(), {"kind": "tea", "pk": 4})) == expected_own
    assert filter_calls == []  # its own column and its parent link (the pk) are its table's


@isolate_apps("tests.testapp")
def test_a_proxy_model_reads_its_concrete_table():
    class ArticleProxy(Article):
        class Meta:
            proxy = True
            app_label = "testapp"

    expected = sql(ArticleProxy.objects.filter(organization_id=5, deleted_at__isnull=True))
    assert sql(narrow(ArticleProxy.objects.all(), {"organization_id": 5})) != sql(
        ArticleProxy.objects.all()
    )
    narrowed = narrow(ArticleProxy.objects.all(), Q(organization_id=5, deleted_at__isnull=True))
    assert sql(narrowed) == expected


def test_a_mixed_condition_keeps_both_parts():
    narrowed = narrow(Article.objects.all(), Q(organization_id=5), Q(title__icontains="x"))
    where = str(narrowed.query).split("WHERE", 1)[1]
    assert '"organization_id" = 5' in where
    assert "LIKE" in where


def test_a_value_the_column_cannot_hold_raises_what_filter_raises():
    with pytest.raises(ValueError) as by_filter:
        Article.objects.filter(pk="abc")
    with pytest.raises(ValueError) as by_narrow:
        narrow(Article.objects.all(), {"pk": "abc"})
    assert str(by_narrow.value) == str(by_filter.value)


def test_a_sliced_or_combined_queryset_is_refused_as_filter_refuses():
    with pytest.raises(TypeError, match="slice"):
        narrow(Article.objects.all()[:2], {"pk": 1})
    with pytest.raises(NotSupportedError):
        narrow(Article.objects.all().union(Article.objects.all()), {"pk": 1})


@pytest.mark.django_db
def test_rows_match_filter_on_the_database():
    org_a = Organization.objects.create(name="a", slug="a")
    org_b = Organization.objects.create(name="b", slug="b")
    now = datetime.datetime(2026, 1, 1, tzinfo=datetime.UTC)
    for org in (org_a, org_b):
        Article.objects.create(organization=org, slug="live", title="live")
        Article.objects.create(organization=org, slug="gone", title="gone", deleted_at=now)
    conditions = [Q(organization_id=org_a.pk), Q(deleted_at__isnull=True)]
    narrowed = narrow(Article.objects.all(), *conditions)
    assert list(narrowed.values_list("pk", flat=True)) == list(
        Article.objects.filter(*conditions).values_list("pk", flat=True)
    )
    assert [a.slug for a in narrowed] == ["live"]
    assert narrow(Article.objects.all(), {"organization_id": org_b.pk}).count() == 2
