"""rev-fixes67: a review of rev-fixes62 (declared querysets' prefetches, start-up watching,
arc.W015) and rev-fixes63 (the readings ``_clone`` installs per copy)."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

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


def test_rf67_a_cached_resource_registered_from_a_models_module_starts_and_is_watched(
    tmp_path: Path,
) -> None:
    """``register()`` watches at once, and ``watch()`` read a relation's ``related_model``,
    which Django refuses before every model is loaded: a cached resource registered from a
    models module with a foreign key among its fields (or one its target's deletes set)
    was ``AppRegistryNotReady`` at start-up, so no command ran. Watched once the registry is
    ready (``autodiscover()`` in ``ready()``), its own saves and its keys' target's deletes
    are connected."""
    app = tmp_path / "rf67early"
    app.mkdir()
    (app / "__init__.py").write_text("")
    (app / "models.py").write_text(textwrap.dedent(RF67_MODELS))
    (tmp_path / "rf67settings.py").write_text(textwrap.dedent(RF67_SETTINGS))
    (tmp_path / "rf67urls.py").write_text("urlpatterns = []\n")
    env = dict(os.environ, DJANGO_SETTINGS_MODULE="rf67settings")
    env["PYTHONPATH"] = os.pathsep.join([str(tmp_path), *(path for path in sys.path if path)])
    done = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(RF67_SCRIPT)],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.split() == ["True", "True"], done.stdout
