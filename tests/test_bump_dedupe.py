"""Adversarial savepoint sequences for the bump dedupe of ``bump_on_commit``: a bump
already waiting for the commit is not registered again only while every savepoint it was
registered in is still open. Whatever the sequence of savepoints (released, rolled back,
nested, ``savepoint=False``, ``durable``) and writes, the read after the commit is a MISS
with the committed rows, and a rolled-back write leaves the cached answer as it was."""

from __future__ import annotations

import pytest
from django.db import transaction

from tests.redis_support import REDIS_URL
from tests.test_model_shapes import cache_api, hit  # noqa: F401  (the fixture)
from tests.testapp.models import Dog, DogTag

pytestmark = [
    pytest.mark.redis,
    pytest.mark.skipif(not REDIS_URL, reason="ARC_REDIS_URL is not set (make test sets it)"),
    pytest.mark.django_db(transaction=True),
]


class Undo(Exception):
    pass


def rename(dog, name):
    dog.name = name
    dog.save()  # post_save of Dog: the tags read Dog's and Animal's rows


def url(name):
    return f"/cached/dog-tags/?dog__name={name}"


@pytest.fixture
def dog(cache_api):  # noqa: F811
    dog = Dog.objects.create(name="rex")
    DogTag.objects.create(dog=dog, label="t")
    for name in ("rex", "a", "b", "c"):
        hit(cache_api, url(name))
    return dog


def fresh(api, name, total):
    r = api.get(url(name))
    assert r["X-Cache"] == "MISS", (name, r.content)
    assert r.json()["total"] == total, (name, r.json())


def test_released_savepoint_then_rolled_back_one(cache_api, dog):  # noqa: F811
    with transaction.atomic():
        with transaction.atomic():
            rename(dog, "a")  # bump waiting in s1
        try:
            with transaction.atomic():  # s2, another id
                rename(dog, "b")  # s1 is no longer open: registered again
                raise Undo
        except Undo:
            pass
    fresh(cache_api, "a", 1)
    fresh(cache_api, "rex", 0)


def test_outer_write_then_repeat_in_a_rolled_back_savepoint(cache_api, dog):  # noqa: F811
    with transaction.atomic():
        rename(dog, "a")  # waiting at the outermost level
        try:
            with transaction.atomic():
                rename(dog, "b")  # skipped: the outer bump covers it
                raise Undo
        except Undo:
            pass
    fresh(cache_api, "a", 1)
    fresh(cache_api, "b", 0)


def test_inner_write_first_outer_rolled_back_then_write(cache_api, dog):  # noqa: F811
    with transaction.atomic():
        try:
            with transaction.atomic():  # s1
                with transaction.atomic():  # s2
                    rename(dog, "a")
                rename(dog, "b")  # {s1, s2} is not open: registered in {s1}
                with transaction.atomic(savepoint=False):
                    rename(dog, "c")  # skipped: {s1} is open
                raise Undo
        except Undo:
            pass
        dog.refresh_from_db()
        assert dog.name == "rex"
        rename(dog, "b")  # every bump was dropped with s1: registered again
    fresh(cache_api, "b", 1)
    fresh(cache_api, "rex", 0)


def test_a_rolled_back_inner_savepoint_keeps_the_enclosing_bump(cache_api, dog):  # noqa: F811
    with transaction.atomic(durable=True):
        with transaction.atomic():  # s1
            rename(dog, "a")
            transaction.on_commit(lambda: None, robust=True)
            try:
                with transaction.atomic():  # s2
                    rename(dog, "b")  # skipped: {s1} is open
                    raise Undo
            except Undo:
                pass
    fresh(cache_api, "a", 1)
    fresh(cache_api, "rex", 0)


def test_a_delete_after_a_save_in_separate_savepoints(cache_api, dog):  # noqa: F811
    with transaction.atomic():
        with transaction.atomic():
            rename(dog, "a")
        with transaction.atomic():
            DogTag.objects.filter(dog=dog).delete()  # the tags' own signal
            dog.delete()  # a post_delete for Dog and for Animal
    fresh(cache_api, "a", 0)
    fresh(cache_api, "rex", 0)


def test_a_whole_rolled_back_transaction_then_an_autocommit_write(cache_api, dog):  # noqa: F811
    try:
        with transaction.atomic():
            rename(dog, "a")
            raise Undo
    except Undo:
        pass
    hit(cache_api, url("rex"))  # nothing was bumped
    dog.refresh_from_db()
    rename(dog, "b")
    fresh(cache_api, "b", 1)
    fresh(cache_api, "rex", 0)


def test_a_waiting_bump_of_other_keys_does_not_cover_a_write_to_another_resource(
    cache_api,  # noqa: F811
    dog,
):
    """The dedupe skips a bump only when the waiting one bumps the same keys (or more): a
    write to another cached resource in the same transaction, after a waiting bump of the
    tags', is bumped on the commit too."""
    from tests.testapp.models import Author

    author = Author.objects.create(name="Ann")
    hit(cache_api, "/cached/authors/")
    with transaction.atomic():
        rename(dog, "a")  # the tags' bump, waiting at the outermost level
        author.name = "Bea"
        author.save()  # the authors' bump: other keys, registered as well
    fresh(cache_api, "a", 1)
    after = cache_api.get("/cached/authors/")
    assert after["X-Cache"] == "MISS", after.content
    assert [row["name"] for row in after.json()["docs"]] == ["Bea"]
