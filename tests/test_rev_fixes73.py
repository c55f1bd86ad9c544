"""rev-fixes73: a review of rev-escape, rev-fixes70, rev-fixes71 and 8308e24."""

from __future__ import annotations

import json
import logging
import sys

import pytest
from rest_framework import serializers as drf_serializers
from rest_framework.validators import UniqueValidator

from django_arc import Resource, ResourceSite, presets
from django_arc import permissions as P
from django_arc.events import create_event
from django_arc.events.transports import RedisStreamsTransport
from tests.factories import AuthorFactory, BookFactory, UserFactory
from tests.helpers import assert_error, client_for, site_mounted
from tests.test_rev_escape import REDIS_URL, needs_redis, stream  # noqa: F401 - a fixture
from tests.testapp.models import Book

#: deeper than the interpreter's recursion limit, shallower than what ``json`` reads from
#: Python 3.12 (its C parser has a limit of its own; 3.11 refuses it as nested too deep)
_DEPTH = sys.getrecursionlimit() + 200


@needs_redis
@pytest.mark.parametrize(
    ("inner", "delivered"),
    [
        # an emoji as a producer escaping non-ASCII writes it (Python's json.dumps): an event
        ('"\\ud83d\\ude00"', True),
        # a lone surrogate: no event can be written back from it
        ('"\\ud800"', False),
    ],
    ids=["escaped-pair", "lone-surrogate"],
)
def test_a_deep_entry_holding_a_surrogate_escape_is_handled_or_dead_lettered(
    stream,  # noqa: F811 - the fixture
    inner,
    delivered,
):
    """``wire.decode`` looks for lone surrogates in an entry whose text holds a surrogate
    escape by walking the decoded value; the walk recursed, and from Python 3.12 ``json``
    reads values nested deeper than the recursion limit: ``RecursionError`` out of
    ``consume``, so the entry (and its batch) was never acknowledged nor dead-lettered and
    came back on every reclaim. On 3.11 ``json`` refuses the nesting itself (dead-lettered,
    "nested too deep")."""
    transport = RedisStreamsTransport(
        REDIS_URL, stream=stream, group="g", consumer="c", dead_stream=f"{stream}:dlq"
    )
    seen: list[str] = []
    transport.subscribe("*", lambda event: seen.append(event.type))
    payload = '{"a":' * _DEPTH + inner + "}" * _DEPTH
    raw = (
        '{"type":"x.deep","payload":' + payload + ',"meta":{"id":"e-1",'
        '"timestamp":"2026-01-01T00:00:00.000Z"}}'
    )
    try:
        transport.ensure_group()
        transport.client.xadd(stream, {"type": "x.deep", "data": raw})
        transport.publish(create_event("x.after", {}))
        transport.consume(count=10, block_ms=None)
        assert transport.client.xpending(stream, "g")["pending"] == 0
        dead = transport.client.xrange(f"{stream}:dlq")
        if sys.version_info < (3, 12):
            assert seen == ["x.after"]
            [(_, letter)] = dead
            assert letter[b"reason"].startswith(b"data is not JSON: nested too deep")
        elif delivered:
            assert seen == ["x.deep", "x.after"]
            assert dead == []
        else:
            assert seen == ["x.after"]
            [(_, letter)] = dead
            assert letter[b"reason"].startswith(b"data holds the lone surrogate U+D800")
            assert letter[b"data"] == raw.encode()
    finally:
        transport.close()


# -- log lines -------------------------------------------------------------------------------

rf73_site = ResourceSite(name="rf73")


@rf73_site.register
class Rf73IsbnBooks(Resource):
    """Bulk over rows addressed by their ISBN, a text the client chooses, updated by filter."""

    model = Book
    fields = ["id", "title", "isbn", "pages", "author"]
    name = "rf73-isbn-books"
    lookup_field = "isbn"
    filter_fields = {"pages": ["gte"]}
    presets = [presets.Bulk()]
    permissions = {k: P.require_auth() for k in ("list", "get", "create", "update", "delete")}

    def after_update(self, request, instance):
        # a statement of the project's hook the database refuses for the second row
        if instance.title == "rf73-dup":
            Book.objects.filter(pk=instance.pk).update(isbn="rf73-taken")


@pytest.mark.django_db
def test_a_bulk_rows_conflict_is_logged_on_one_line_whatever_its_id(settings, caplog):
    """A ``filter`` bulk update names each row by its lookup value (``ids[<isbn>]``), a text
    the client chose when it created the row; the database's refusal of a statement for
    that row (here a hook's) was logged as "Integrity error on bulk item ids[<isbn>]" with
    the name raw, so an ISBN holding a newline wrote a second, forged line (the request
    path and the database's message are escaped: docs/errors.md, Logging)."""
    author = AuthorFactory()
    BookFactory(isbn="rf73-taken", pages=0, author=author, title="kept")
    BookFactory(isbn="b\nCRITICAL forged", pages=5, author=author)
    with (
        site_mounted(settings, "p", rf73_site),
        caplog.at_level(logging.WARNING, logger="django_arc"),
    ):
        response = client_for(UserFactory()).patch(
            "/p/rf73-isbn-books/bulk/",
            {"filter": {"pages[gte]": 5}, "data": {"title": "rf73-dup"}},
            format="json",
        )
    assert_error(response, 409, "CONFLICT")
    [line] = [r.getMessage() for r in caplog.records if "Integrity error" in r.getMessage()]
    assert "\n" not in line, line
    assert "b\\nCRITICAL forged" in line


# -- a serializer's fields -------------------------------------------------------------------


class Rf73AuthorsIsbnSerializer(drf_serializers.ModelSerializer):
    """A project's serializer judging an ISBN's uniqueness among the author's own books, by
    narrowing the generated field's ``UniqueValidator`` as it is built (DRF builds a model
    field's validators afresh for every serializer)."""

    class Meta:
        model = Book
        fields = ["id", "title", "isbn", "author"]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        data = getattr(self, "initial_data", None)
        if isinstance(data, dict) and data.get("author"):
            for validator in self.fields["isbn"].validators:
                if isinstance(validator, UniqueValidator):
                    validator.queryset = validator.queryset.filter(author_id=data["author"])


@rf73_site.register
class Rf73AuthorsIsbnBooks(Resource):
    model = Book
    serializer_class = Rf73AuthorsIsbnSerializer
    name = "rf73-authors-isbn-books"
    permissions = {k: P.require_auth() for k in ("list", "get", "create", "update", "delete")}


@pytest.mark.django_db
def test_a_fields_validators_are_each_requests_own(settings):
    """A serializer's cached fields are copied for each request, their validator lists too,
    but the validators in them were the cached field's: a project narrowing the generated
    ``UniqueValidator``'s queryset for its request narrowed it for every later request too
    (the second author's check ran among the books of both authors, none: a taken ISBN
    passed it and the database refused the write, a 409 naming nothing where the field's
    own 400 names ``isbn``)."""
    first, second = AuthorFactory(), AuthorFactory()
    BookFactory(isbn="rf73-taken", author=second)
    client = client_for(UserFactory())
    url = "/p/rf73-authors-isbn-books/"
    with site_mounted(settings, "p", rf73_site):
        made = client.post(
            url, {"title": "t", "isbn": "rf73-new", "author": first.pk}, format="json"
        )
        taken = client.post(
            url, {"title": "t", "isbn": "rf73-taken", "author": second.pk}, format="json"
        )
    assert made.status_code == 201, made.content
    body = assert_error(taken, 400, "VALIDATION_ERROR")
    assert "isbn" in json.dumps(body), body
    assert Book.objects.filter(isbn="rf73-taken").count() == 1
