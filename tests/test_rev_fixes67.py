"""rev-fixes67: a review of rev-fixes62 (declared querysets' prefetches, start-up watching,
arc.W015) and rev-fixes63 (the readings ``_clone`` installs per copy)."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest
from django.db.models import OuterRef, Prefetch, Subquery

from django_arc import Resource
from django_arc import permissions as P
from django_arc.querycache.invalidation import _models_read
from tests import test_query_cache
from tests.factories import AuthorFactory, BookFactory
from tests.helpers import client_for, site_mounted
from tests.redis_support import REDIS_URL
from tests.test_query_cache import get
from tests.test_query_cache_invalidation import hit_then, registered_site
from tests.testapp.models import Author, Book, Review

# Redis under a prefix of the test's own (autouse)
rf67_redis_cache = test_query_cache.redis_cache

RF67_SETTINGS = """
SECRET_KEY = "rf67"
INSTALLED_APPS = [
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "rest_framework",
    "django_arc",
    "rf67early",
]
DATABASES = {"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": ":memory:"}}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
ROOT_URLCONF = "rf67urls"
USE_TZ = True
"""

# a cached resource registered from a models module, before the app registry is ready,
# rendering a foreign key whose target's deletes set it (SET_NULL)
RF67_MODELS = """
from django.db import models

from django_arc import Resource, arc


class Rf67Writer(models.Model):
    name = models.CharField(max_length=50)


class Rf67Text(models.Model):
    title = models.CharField(max_length=50)
    writer = models.ForeignKey(Rf67Writer, null=True, on_delete=models.SET_NULL)


@arc.register
class Rf67TextResource(Resource):
    model = Rf67Text
    fields = ["id", "title", "writer"]
    cache = {"stale_seconds": 30}
"""

RF67_SCRIPT = """
import django

django.setup()
from django.db.models.signals import post_delete, post_save

from rf67early.models import Rf67Text, Rf67Writer

print(post_save.has_listeners(Rf67Text), post_delete.has_listeners(Rf67Writer))
"""


def rf67_run(tmp_path: Path, models: str, args: list[str], resources: str = "") -> Any:
    """Run ``python args`` in a fresh process for a project of one app, ``rf67early``, with
    ``models`` as its models module (and ``resources`` as its resources module)."""
    app = tmp_path / "rf67early"
    app.mkdir()
    (app / "__init__.py").write_text("")
    (app / "models.py").write_text(textwrap.dedent(models))
    if resources:
        (app / "resources.py").write_text(textwrap.dedent(resources))
    (tmp_path / "rf67settings.py").write_text(textwrap.dedent(RF67_SETTINGS))
    (tmp_path / "rf67urls.py").write_text("urlpatterns = []\n")
    env = dict(os.environ, DJANGO_SETTINGS_MODULE="rf67settings")
    env["PYTHONPATH"] = os.pathsep.join([str(tmp_path), *(path for path in sys.path if path)])
    return subprocess.run(
        [sys.executable, *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_rf67_a_cached_resource_registered_from_a_models_module_starts_and_is_watched(
    tmp_path: Path,
) -> None:
    """``register()`` watches at once, and ``watch()`` read a relation's ``related_model``,
    which Django refuses before every model is loaded: a cached resource registered from a
    models module with a foreign key among its fields (or one its target's deletes set)
    was ``AppRegistryNotReady`` at start-up, so no command ran. Watched once the registry is
    ready (``autodiscover()`` in ``ready()``), its own saves and its keys' target's deletes
    are connected."""
    done = rf67_run(tmp_path, RF67_MODELS, ["-c", textwrap.dedent(RF67_SCRIPT)])
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.split() == ["True", "True"], done.stdout


RF67_PLAIN_MODELS = """
from django.db import models


class Rf67Text(models.Model):
    title = models.CharField(max_length=50)
"""

# a cached resource whose serializer does not build (a misspelt field name)
RF67_BROKEN_RESOURCES = """
from rest_framework import serializers

from django_arc import Resource, arc

from .models import Rf67Text


class Rf67Misspelt(serializers.ModelSerializer):
    class Meta:
        model = Rf67Text
        fields = ["id", "titel"]


@arc.register
class Rf67TextResource(Resource):
    model = Rf67Text
    serializer_class = Rf67Misspelt
    cache = {"stale_seconds": 30}
"""


def test_rf67_a_cached_resource_whose_serializer_does_not_build_is_reported_not_raised(
    tmp_path: Path,
) -> None:
    """``watch()``, run by ``register()`` in the start-up autodiscovery, read a cached
    resource's field names from its serializer: one that does not build raised there, so
    ``manage.py check`` (and every other command) stopped with DRF's traceback instead of
    arc.E001 naming the resource, as it does for the same resource uncached."""
    done = rf67_run(
        tmp_path, RF67_PLAIN_MODELS, ["-m", "django", "check"], resources=RF67_BROKEN_RESOURCES
    )
    assert "Traceback" not in done.stderr, done.stderr[-2000:]
    assert "(arc.E001) `serializer_class` Rf67Misspelt cannot build its fields" in done.stderr
    assert done.returncode == 1


# -- a Prefetch queryset's ordering is what the rendered relation's order reads ----------------


class Rf67AuthorsBooksByFirstReview(Resource):
    """Authors rendering their books in the order a declared ``Prefetch`` queryset gives
    them: by their first review's text, a subquery over Review in its ``ORDER BY``."""

    model = Author
    name = "rf67-books-by-review"
    queryset = Author.objects.prefetch_related(
        Prefetch(
            "books",
            queryset=Book.objects.order_by(
                Subquery(
                    Review.objects.filter(book=OuterRef("pk")).order_by("body").values("body")[:1]
                ),
                "pk",
            ),
        )
    )
    fields = ["id", "name", "books"]
    permissions = {"list": P.allow_public(), "get": P.allow_public()}
    cache = {"stale_seconds": 30}


class Rf67AuthorsBooksByReviewPath(Rf67AuthorsBooksByFirstReview):
    """The same ordered by a path through Review (joined only when the query is compiled)."""

    name = "rf67-books-by-review-path"
    queryset = Author.objects.prefetch_related(
        Prefetch("books", queryset=Book.objects.order_by("reviews__body", "pk"))
    )


@pytest.mark.redis
@pytest.mark.skipif(not REDIS_URL, reason="ARC_REDIS_URL is not set (make test sets it)")
@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("resource", [Rf67AuthorsBooksByFirstReview, Rf67AuthorsBooksByReviewPath])
def test_rf67_a_declared_prefetch_ordered_by_another_model_is_retired_by_its_writes(
    settings, monkeypatch, resource
):
    """rev-fixes62 read the tables a ``Prefetch`` queryset joins and filters by, not those
    its ``ORDER BY`` reads: the rendered ``books`` are in that order, and a review reworded
    (which reorders them) left the author's answer a HIT with the old order."""
    from django_arc.querycache import invalidation

    # what other tests' resources over Author recorded as read is forgotten for this one
    monkeypatch.setattr(invalidation, "_readers", {})
    monkeypatch.setattr(invalidation, "_readers_by_table", {})
    author = AuthorFactory(name="Tolkien")
    first, second = BookFactory(author=author), BookFactory(author=author)
    review = Review.objects.create(book=first, body="a")
    Review.objects.create(book=second, body="b")
    with registered_site("rf67-prefetch-order", resource) as site:
        with site_mounted(settings, "rf67o", site):
            client = client_for(None)
            path = f"/rf67o/{resource.name}/"
            assert get(client, path).json()["docs"][0]["books"] == [first.pk, second.pk]

            def reword():
                review.body = "c"
                review.save()

            after = hit_then(client, path, reword)
    assert after["X-Cache"] == "MISS"
    assert after.json()["docs"][0]["books"] == [second.pk, first.pk]
    assert Review in _models_read(resource())
