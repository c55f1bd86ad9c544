"""What a write's guarantees cost it where they cannot matter (cost9).

The checks a write runs (a transaction left aborted, the relations a body may name) are
kept exactly; these tests pin that a write no longer asks them where the answer is known
already, and that where it may differ they are still asked.
"""

from __future__ import annotations

from unittest import mock

import pytest
from django.db import connections
from rest_framework import serializers

from django_arc import Resource, ResourceSite, generics, transactions
from django_arc import permissions as P
from tests.factories import AuthorFactory
from tests.helpers import site_mounted
from tests.testapp.models import Author, Book

pytestmark = pytest.mark.django_db

COST9_PUBLIC = {key: P.allow_public() for key in ("list", "get", "create", "update", "delete")}

cost9_site = ResourceSite(name="cost9")


@cost9_site.register
class Cost9BookResource(Resource):
    """A write with none of the hooks overridden."""

    model = Book
    name = "cost9-books"
    fields = ["id", "title", "isbn", "pages", "price", "author"]
    permissions = COST9_PUBLIC


@cost9_site.register
class Cost9HookedBookResource(Cost9BookResource):
    """The same write, each ``before_*`` hook overridden: it may run a statement."""

    name = "cost9-hooked-books"

    def before_create(self, request, data):
        return None

    def before_update(self, request, instance, data):
        return None

    def before_delete(self, request, instance):
        return None


def _cost9_aborted_questions(api, settings, path):
    """The databases each aborted-transaction check of a create, an update and a delete
    of one row asked about, per write."""
    author = AuthorFactory()
    asked = []

    def counted(using, *args, **kwargs):
        asked.append(tuple(using))
        return real(using, *args, **kwargs)

    real = generics.fault_if_aborted
    answers = []
    with site_mounted(settings, "cost9", cost9_site):
        with mock.patch.object(generics, "fault_if_aborted", counted):
            created = api.post(
                f"/cost9/{path}/",
                {"title": "t", "isbn": "cost9", "author": author.pk},
                format="json",
            )
            answers.append((created.status_code, len(asked)))
            pk = created.json()["data"]["id"]
            updated = api.patch(f"/cost9/{path}/{pk}/", {"title": "u"}, format="json")
            answers.append((updated.status_code, len(asked) - answers[-1][1]))
            deleted = api.delete(f"/cost9/{path}/{pk}/")
            answers.append((deleted.status_code, len(asked) - answers[-1][1] - answers[-2][1]))
    return answers, set(asked)


def test_cost9_a_write_whose_first_hook_is_not_overridden_asks_the_aborted_question_once_less(
    api, settings
):
    """The check after a write's first hook (``before_create``, ``before_update``,
    ``before_delete``) asked again what the check before it had just answered, when the
    hook is ``Resource``'s no-op and nothing else ran in between: a create asked three
    times. Now twice (before the write, after its ``after_*`` hook); an overridden first
    hook is checked still (it may have caught a failed statement: test_bulk_hooks)."""
    plain, databases = _cost9_aborted_questions(api, settings, "cost9-books")
    hooked, _ = _cost9_aborted_questions(api, settings, "cost9-hooked-books")
    assert plain == [(201, 2), (200, 2), (200, 2)]
    assert hooked == [(201, 3), (200, 3), (200, 3)]
    assert databases == {("default",)}


def test_cost9_the_aborted_question_about_a_writes_databases_reads_only_theirs():
    """Asked about a write's own databases, :func:`transactions.aborted_databases` reads
    each one's connection once, not every configured alias's (``connections.all()`` read
    each thread-local twice); its answers are the same: an open connection whose
    transaction Django marked for rollback is named, one never opened is not."""
    connection = connections["default"]
    connection.ensure_connection()
    with mock.patch.object(transactions.connections, "all", side_effect=AssertionError):
        assert transactions.aborted_databases(["default"]) == []
        assert transactions.aborted_databases(["default", "default"]) == []
        assert transactions.aborted_databases(["cost9-no-such-alias"]) == []
        # inside the test's transaction: Django's mark for rollback is seen
        assert connection.in_atomic_block
        connection.needs_rollback = True
        try:
            assert transactions.aborted_databases(["default"]) == ["default"]
        finally:
            connection.needs_rollback = False
    assert transactions.aborted_databases() == []


class Cost9QuerysetCharField(serializers.CharField):
    """A text field given rows of its own (a project's field reading them to validate):
    its class names none, the instance does."""

    def __init__(self, **kwargs):
        self.queryset = Author.objects.all()
        super().__init__(**kwargs)

    def get_queryset(self):
        return self.queryset


class Cost9BookSerializer(serializers.ModelSerializer):
    named = Cost9QuerysetCharField(write_only=True, required=False)
    authors = serializers.ListField(
        child=serializers.PrimaryKeyRelatedField(queryset=Author.objects.all()),
        write_only=True,
        required=False,
    )

    class Meta:
        model = Book
        fields = ["id", "title", "isbn", "pages", "price", "author", "named", "authors"]

    def create(self, validated_data):
        validated_data.pop("named", None)
        validated_data.pop("authors", None)
        return super().create(validated_data)


@cost9_site.register
class Cost9SerializedBookResource(Resource):
    model = Book
    name = "cost9-serialized-books"
    serializer_class = Cost9BookSerializer
    permissions = COST9_PUBLIC


def test_cost9_the_relation_walk_of_a_write_asks_only_fields_that_may_name_rows(api, settings):
    """A write narrowed the rows its body may name by asking ``_narrow_field`` of every
    field of its serializer, text and numbers too (a create of the benchmark's row: 8
    calls for its one relation). Whether a field names rows is told in the loop, without a
    call per field (fix-seen12a: not kept per class); the walk asks only the relations,
    the nested and list fields, and any field given a ``queryset``, ``child`` or
    ``child_relation`` of its own (``named``)."""
    author = AuthorFactory()
    walked = []
    real = generics.ResourceGenericViewSet._narrow_field

    def counted(self, field, *args):
        walked.append(field.field_name or type(field).__name__)
        return real(self, field, *args)

    with site_mounted(settings, "cost9", cost9_site):
        with mock.patch.object(generics.ResourceGenericViewSet, "_narrow_field", counted):
            first = api.post(
                "/cost9/cost9-serialized-books/",
                {"title": "t", "isbn": "c9-1", "author": author.pk, "named": "n"},
                format="json",
            )
            walked_first, walked[:] = list(walked), []
            second = api.post(
                "/cost9/cost9-serialized-books/",
                {"title": "t", "isbn": "c9-2", "author": author.pk, "authors": [author.pk]},
                format="json",
            )
    assert (first.status_code, second.status_code) == (201, 201), first.content
    expected = ["author", "named", "authors", "PrimaryKeyRelatedField"]
    assert walked_first == walked == expected
    refused = None
    with site_mounted(settings, "cost9", cost9_site):
        refused = api.post(
            "/cost9/cost9-serialized-books/",
            {"title": "t", "isbn": "c9-3", "author": author.pk, "authors": [10**9]},
            format="json",
        )
    assert refused.status_code == 400, refused.content
    assert "authors" in refused.json()["details"]


def test_cost9_a_create_without_observers_or_pairs_reads_neither_again(api, settings):
    """A create whose resource has no preset observing writes entered
    ``_watching_updates`` (a generator's context manager) to note that nothing was
    watched, and read its model's generic pairs from ``private_fields`` three times. A
    model without private fields answers by one attribute read (fix-seen12a: not kept per
    class), and no watch is entered; the forced-values read-back
    still knows nothing was updated (a create answers as before)."""
    from django_arc import query

    author = AuthorFactory()
    with site_mounted(settings, "cost9", cost9_site):
        with mock.patch.object(
            generics.ResourceGenericViewSet, "_watching_updates", side_effect=AssertionError
        ):
            created = api.post(
                "/cost9/cost9-books/",
                {"title": "t", "isbn": "c9-w", "author": author.pk},
                format="json",
            )
    assert created.status_code == 201, created.content
    assert created.json()["data"]["title"] == "t"
    assert query.generic_foreign_keys(Book) == ()
