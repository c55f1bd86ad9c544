"""Generic relations (``django.contrib.contenttypes``) on a resource: a ``GenericForeignKey``
and a ``GenericRelation`` (``tests/testapp``: a Sticker stuck on any row, a Board holding
stickers). DRF has no field for either: the generated serializer cannot render them, and a
``GenericForeignKey`` has no column to filter or sort by; both are refused by ``manage.py
check`` (arc.E017). A project serializer rendering them is served, with the relation
prefetched (never joined: ``select_related`` cannot follow a ``GenericForeignKey``)."""

from __future__ import annotations

import pytest
from django.contrib.contenttypes.models import ContentType
from django.db import connection
from django.test import override_settings
from django.test.utils import CaptureQueriesContext
from rest_framework import serializers

from django_arc import Resource, ResourceSite, presets
from django_arc.checks import check_resource
from django_arc.sites import _all_sites
from tests.helpers import client_for, site_mounted
from tests.redis_support import REDIS_URL, arc_with, caches_with
from tests.testapp.models import Author, Board, Sticker
from tests.testapp.resources import PUBLIC


class StickerLabelSerializer(serializers.ModelSerializer):
    class Meta:
        model = Sticker
        fields = ["id", "label"]


class StickerTargetSerializer(serializers.ModelSerializer):
    """A sticker rendering what it is stuck on (its ``str()``)."""

    target = serializers.StringRelatedField(read_only=True)

    class Meta:
        model = Sticker
        fields = ["id", "label", "target", "content_type", "object_id"]


class BoardSerializer(serializers.ModelSerializer):
    stickers = StickerLabelSerializer(many=True, read_only=True)

    class Meta:
        model = Board
        fields = ["id", "title", "stickers"]


class BoardTargetsSerializer(serializers.ModelSerializer):
    """A board's stickers rendering their targets: a ``GenericForeignKey`` reached through a
    nested serializer (``stickers__target``)."""

    stickers = StickerTargetSerializer(many=True, read_only=True)

    class Meta:
        model = Board
        fields = ["id", "title", "stickers"]


class StuckOnSerializer(serializers.Serializer):
    target = serializers.StringRelatedField(read_only=True)


class NestedTargetSerializer(serializers.ModelSerializer):
    """The GenericForeignKey rendered by a serializer nested on the same row
    (``source="*"``)."""

    where = StuckOnSerializer(source="*", read_only=True)

    class Meta:
        model = Sticker
        fields = ["id", "label", "where"]


class NestedTargetStickers(Resource):
    model = Sticker
    name = "nested-target-stickers"
    serializer_class = NestedTargetSerializer
    permissions = PUBLIC


class GeneratedBoards(Resource):
    model = Board
    name = "generated-boards"
    fields = ["id", "title", "stickers"]
    permissions = PUBLIC


class GeneratedStickers(Resource):
    model = Sticker
    name = "generated-stickers"
    fields = ["id", "label", "target"]
    filter_fields = {"target": ["eq"], "content_type": ["eq"]}
    sort_fields = ["target", "label"]
    search_fields = ["label"]
    permissions = PUBLIC


class StickerResource(Resource):
    model = Sticker
    name = "stickers"
    serializer_class = StickerTargetSerializer
    filter_fields = {"label": ["eq"], "content_type": ["eq"], "object_id": ["eq"]}
    sort_fields = ["label", "object_id"]
    presets = [presets.Bulk()]
    permissions = PUBLIC


class BoardResource(Resource):
    model = Board
    name = "boards"
    serializer_class = BoardSerializer
    filter_fields = {"stickers__label": ["eq"], "stickers": ["eq", "in", "exists"]}
    search_fields = ["stickers__label"]
    permissions = PUBLIC
    cache = {"stale_seconds": 30}


class BoardTargetsResource(Resource):
    model = Board
    name = "board-targets"
    serializer_class = BoardTargetsSerializer
    presets = [presets.Bulk()]
    permissions = PUBLIC


@pytest.fixture
def generic_api(settings):
    site = ResourceSite(name="generic-site")
    for resource in (StickerResource, BoardResource, BoardTargetsResource, NestedTargetStickers):
        site.register(resource)
    try:
        with site_mounted(settings, "g", site):
            yield client_for(None)
    finally:
        _all_sites.remove(site)


def stick(row, label):
    return Sticker.objects.create(
        content_type=ContentType.objects.get_for_model(row), object_id=row.pk, label=label
    )


def test_the_generated_serializer_and_the_query_language_refuse_generic_relations_at_check():
    """``fields`` naming a GenericRelation rendered its manager and a GenericForeignKey its
    row as they are (``TypeError: … not JSON serializable``), and the GenericForeignKey was
    sent to ``select_related`` (``FieldError``): every read a 500; filtering or sorting by
    it another ``FieldError``. ``manage.py check`` passed all of them."""
    board = [(e.id, e.msg) for e in check_resource(GeneratedBoards())]
    assert board == [
        (
            "arc.E017",
            "`fields` names 'stickers', a GenericRelation, which the generated serializer "
            "cannot render (DRF has no field for it).",
        )
    ]
    sticker = [(e.id, e.msg) for e in check_resource(GeneratedStickers())]
    assert [i for i, _ in sticker] == ["arc.E017"] * 3
    assert "`fields` names 'target', a GenericForeignKey" in sticker[0][1]
    assert sticker[1][1].startswith("`filter_fields` names 'target', which follows the")
    assert sticker[2][1].startswith("`sort_fields` names 'target', which follows the")
    # a project serializer rendering them, and filters through a GenericRelation, pass
    for resource in (StickerResource, BoardResource, BoardTargetsResource):
        assert check_resource(resource()) == [], resource


class SortedGeneratedStickers(Resource):
    """A GenericForeignKey named by ``default_sort`` (descending) and ``search_fields``."""

    model = Sticker
    name = "sorted-generated-stickers"
    fields = ["id", "label"]
    default_sort = "label,-target"
    search_fields = ["label", "target"]
    permissions = PUBLIC


class FilteredThroughBoards(Resource):
    """A GenericForeignKey reached through a GenericRelation (``stickers__target``)."""

    model = Board
    name = "filtered-through-boards"
    fields = ["id", "title"]
    filter_fields = {"stickers__target": ["eq"], "stickers__label": ["eq"]}
    permissions = PUBLIC


class ListedStickers(StickerResource):
    """A project serializer rendering the GenericForeignKey, with ``fields`` naming it."""

    name = "listed-stickers"
    fields = ["id", "label", "target"]


def test_every_query_language_path_through_a_generic_foreign_key_is_refused_at_check():
    """``default_sort`` (its ``-`` direction read past), ``search_fields`` and a path that
    reaches the GenericForeignKey through a relation (a GenericRelation's rows) are refused
    as ``filter_fields`` and ``sort_fields`` are; ``fields`` naming it beside a project
    serializer that renders it is not."""
    found = check_resource(SortedGeneratedStickers())
    sorted_ = [(e.id, e.msg) for e in found if e.id == "arc.E017"]  # and E005: not text
    assert len(sorted_) == 2, sorted_
    assert sorted_[0][1].startswith("`default_sort` names 'target', which follows the")
    assert sorted_[1][1].startswith("`search_fields` names 'target', which follows the")
    through = [(e.id, e.msg) for e in check_resource(FilteredThroughBoards()) if e.id == "arc.E017"]
    assert through == [
        (
            "arc.E017",
            "`filter_fields` names 'stickers__target', which follows the GenericForeignKey "
            "'target': it has no column, and the database cannot filter, sort or search "
            "through it.",
        )
    ]
    assert [e for e in check_resource(ListedStickers()) if e.id == "arc.E017"] == []


@pytest.mark.django_db
def test_a_project_serializer_renders_a_generic_foreign_key_with_constant_queries(generic_api):
    """The GenericForeignKey a project serializer renders was joined (``select_related``):
    every list and get a 500. It is prefetched: one query per content type, whatever the
    number of rows."""
    api = generic_api
    board, author = Board.objects.create(title="Plans"), Author.objects.create(name="Ann")
    first = stick(board, "a")
    stick(author, "b")

    def listed():
        with CaptureQueriesContext(connection) as queries:
            answer = api.get("/g/stickers/?sort=label")
        assert answer.status_code == 200, answer.content
        return answer.json()["docs"], len(queries)

    docs, few = listed()
    assert [(d["label"], d["target"]) for d in docs] == [("a", str(board)), ("b", "Ann")]
    for i in range(3):
        stick(Board.objects.create(title=f"b{i}"), f"c{i}")
        stick(Author.objects.create(name=f"A{i}"), f"d{i}")
    docs, many = listed()
    assert len(docs) == 8 and many == few  # count, page, one per content type
    one = api.get(f"/g/stickers/{first.pk}/")
    assert one.status_code == 200 and one.json()["data"]["target"] == str(board)
    selected = api.get("/g/stickers/?select=label&label=a")
    assert selected.status_code == 200 and selected.json()["docs"] == [
        {"id": first.pk, "label": "a"}
    ]


@pytest.mark.django_db
def test_writes_render_the_generic_foreign_key_they_set(generic_api):
    """Create, update and bulk create answer (and send in their events) the row the
    sticker is stuck on now."""
    api = generic_api
    ann, bob = Author.objects.create(name="Ann"), Author.objects.create(name="Bob")
    author_type = ContentType.objects.get_for_model(Author).pk
    body = {"label": "x", "content_type": author_type, "object_id": ann.pk}
    created = api.post("/g/stickers/", body, format="json")
    assert created.status_code == 201, created.content
    assert created.json()["data"]["target"] == "Ann"
    pk = created.json()["data"]["id"]
    updated = api.patch(f"/g/stickers/{pk}/", {"object_id": bob.pk}, format="json")
    assert updated.status_code == 200, updated.content
    assert updated.json()["data"]["target"] == "Bob"
    items = [{**body, "label": "y"}, {**body, "label": "z", "object_id": bob.pk}]
    bulk = api.post("/g/stickers/bulk/", {"items": items}, format="json")
    assert bulk.status_code == 201, bulk.content
    from django_arc.outbox import OutboxEvent

    events = OutboxEvent.objects.filter(type="stickers.created").order_by("pk")
    assert [e.payload["data"]["target"] for e in events] == ["Ann", "Ann", "Bob"]
    changed = OutboxEvent.objects.get(type="stickers.updated").payload
    assert changed["previous"]["target"] == "Ann" and changed["data"]["target"] == "Bob"


@pytest.mark.django_db
def test_a_generic_foreign_key_reached_through_a_nested_serializer_is_prefetched(generic_api):
    """A serializer nested on the row (``source="*"``) rendering the GenericForeignKey sent
    it to ``select_related``: a 500. It is prefetched, as it is below a GenericRelation (a
    board's nested stickers rendering their target: ``stickers__target``), in a constant
    number of queries."""
    api = generic_api
    ann = Author.objects.create(name="Ann")

    def listed():
        with CaptureQueriesContext(connection) as queries:
            answer = api.get("/g/board-targets/")
        assert answer.status_code == 200, answer.content
        return answer.json()["docs"], len(queries)

    board = Board.objects.create(title="one")
    stick(board, "self")
    stick(ann, "ann")  # on no board
    Sticker.objects.filter(label="ann").update(
        content_type=ContentType.objects.get_for_model(Board), object_id=board.pk
    )
    docs, few = listed()
    assert [s["target"] for s in docs[0]["stickers"]] == [str(board), str(board)]
    for i in range(3):
        other = Board.objects.create(title=f"b{i}")
        stick(other, f"s{i}")
    docs, many = listed()
    assert len(docs) == 4 and many == few
    created = api.post("/g/board-targets/bulk/", {"items": [{"title": "new"}]}, format="json")
    assert created.status_code == 201, created.content
    nested = api.get("/g/nested-target-stickers/?limit=2")
    assert nested.status_code == 200, nested.content
    assert nested.json()["docs"][0]["where"] == {"target": str(board)}


@pytest.mark.django_db
def test_a_generic_relation_filters_and_searches_as_a_reverse_relation(generic_api):
    api = generic_api
    plans, notes = Board.objects.create(title="Plans"), Board.objects.create(title="Notes")
    mine = stick(plans, "urgent")
    stick(notes, "later")
    for query, titles in [
        ("stickers__label=urgent", ["Plans"]),
        (f"stickers={mine.pk}", ["Plans"]),
        ("stickers[exists]=false", []),
        ("search=lat", ["Notes"]),
    ]:
        answer = api.get(f"/g/boards/?{query}")
        assert answer.status_code == 200, (query, answer.content)
        assert [d["title"] for d in answer.json()["docs"]] == titles, query
    rendered = api.get(f"/g/boards/{plans.pk}/").json()["data"]
    assert rendered["stickers"] == [{"id": mine.pk, "label": "urgent"}]


@pytest.mark.redis
@pytest.mark.skipif(not REDIS_URL, reason="ARC_REDIS_URL is not set (make test sets it)")
@pytest.mark.django_db(transaction=True)
def test_a_cached_board_is_invalidated_by_a_change_of_its_stickers(generic_api):
    """The rows a GenericRelation renders are a dependency of the cached answers, as a
    reverse relation's are."""
    api = generic_api
    board = Board.objects.create(title="Plans")
    sticker = stick(board, "urgent")
    with (
        override_settings(CACHES=caches_with("redis", REDIS_URL)),
        override_settings(ARC=arc_with(CACHE={"ALIAS": "redis", "STALE_SECONDS": 30})),
    ):
        assert api.get("/g/boards/")["X-Cache"] == "MISS"
        assert api.get("/g/boards/")["X-Cache"] == "HIT"
        sticker.label = "done"
        sticker.save()
        again = api.get("/g/boards/")
    assert again["X-Cache"] == "MISS"
    assert again.json()["docs"][0]["stickers"] == [{"id": sticker.pk, "label": "done"}]


class StickerWriterSerializer(serializers.ModelSerializer):
    """A field of the row a sticker is stuck on, through a dotted ``source``."""

    writer = serializers.CharField(source="target.name", read_only=True)

    class Meta:
        model = Sticker
        fields = ["id", "label", "writer"]


class WriterStickers(Resource):
    model = Sticker
    name = "writer-stickers"
    serializer_class = StickerWriterSerializer
    permissions = PUBLIC
    default_sort = "label"


class StickerPlaceSerializer(serializers.ModelSerializer):
    place = serializers.CharField(source="target.title", read_only=True)

    class Meta:
        model = Sticker
        fields = ["id", "label", "place"]


class BoardPlacesSerializer(serializers.ModelSerializer):
    stickers = StickerPlaceSerializer(many=True, read_only=True)

    class Meta:
        model = Board
        fields = ["id", "title", "stickers"]


class BoardPlaces(Resource):
    model = Board
    name = "board-places"
    serializer_class = BoardPlacesSerializer
    permissions = PUBLIC
    default_sort = "title"


@pytest.mark.django_db
def test_a_dotted_source_through_a_generic_foreign_key_is_prefetched(settings):
    """``source="target.name"`` (a field of the row a sticker is stuck on) was read row by
    row: the path stopped at the ``GenericForeignKey``, which no join follows, and nothing
    loaded it. It is prefetched (one query per content type), on the rows and below a
    relation (a board's stickers: ``stickers__target``) alike; a get reads it too."""
    site = ResourceSite(name="writer-site")
    site.register(WriterStickers)
    site.register(BoardPlaces)
    api = client_for(None)

    def listed(path):
        with CaptureQueriesContext(connection) as queries:
            answer = api.get(path)
        assert answer.status_code == 200, answer.content
        return answer.json()["docs"], len(queries)

    def add(n, start):
        for i in range(start, start + n):
            stick(Author.objects.create(name=f"A{i}"), f"s{i}")
            board = Board.objects.create(title=f"b{i}")
            stick(board, f"on b{i}")
            stick(board, f"also on b{i}")

    try:
        with (
            site_mounted(settings, "w", site),
            override_settings(ARC=arc_with(CACHE={"ENABLED": False})),
        ):
            add(1, 0)
            _, few = listed("/w/writer-stickers/")
            _, boards_few = listed("/w/board-places/")
            add(4, 1)
            docs, many = listed("/w/writer-stickers/")
            boards, boards_many = listed("/w/board-places/")
            first = Sticker.objects.get(label="s0")
            with CaptureQueriesContext(connection) as queries:
                one = api.get(f"/w/writer-stickers/{first.pk}/")
    finally:
        _all_sites.remove(site)
    writers = {d["label"]: d.get("writer") for d in docs if d["label"].startswith("s")}
    assert writers == {f"s{i}": f"A{i}" for i in range(5)}
    assert many == few  # the page, its count, one query per content type
    assert [[s["place"] for s in b["stickers"]] for b in boards] == [
        [f"b{i}"] * 2 for i in range(5)
    ]
    assert boards_many == boards_few
    assert one.status_code == 200 and one.json()["data"]["writer"] == "A0"
    assert len(queries) == 2, [q["sql"] for q in queries.captured_queries]  # the row, the author


class RenamingWriterStickers(Resource):
    """A sticker update whose hook renames the row it is stuck on, through a queryset."""

    model = Sticker
    name = "renaming-writer-stickers"
    serializer_class = StickerWriterSerializer
    permissions = PUBLIC
    default_sort = "label"

    def before_update(self, request, instance, data):
        Author.objects.filter(pk=instance.object_id).update(name="Renamed")
        return data


@pytest.mark.django_db
def test_an_update_renders_the_generic_foreign_keys_row_as_its_hooks_left_it(settings):
    """A dotted source through a ``GenericForeignKey`` (``source="target.name"``) is
    prefetched with the row an update reads; a hook renaming that row through a queryset
    left the name read before the write in the answer (and the event), where a get after
    the write renders the new one (the rows a write's read joined or prefetched are read
    again: ``load_relations(reload=True)``)."""
    site = ResourceSite(name="renaming-writer-site")
    site.register(RenamingWriterStickers)
    api = client_for(None)
    author = Author.objects.create(name="Before")
    sticker = stick(author, "s")
    try:
        with (
            site_mounted(settings, "rw", site),
            override_settings(ARC=arc_with(CACHE={"ENABLED": False})),
        ):
            path = f"/rw/renaming-writer-stickers/{sticker.pk}/"
            written = api.patch(path, {"label": "t"}, format="json")
            after = api.get(path)
    finally:
        _all_sites.remove(site)
    assert written.status_code == 200, written.content
    assert after.json()["data"]["writer"] == "Renamed"
    assert written.json()["data"]["writer"] == "Renamed"
