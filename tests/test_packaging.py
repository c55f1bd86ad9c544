"""django-arc as its users receive it: the base install, without the extras.

The test environment has every extra installed, so a module-level ``import redis`` in a
module every project imports passes the whole suite and fails the first project installed
without the ``redis`` extra (``manage.py check`` ended in ``ModuleNotFoundError``). These
run a project in a fresh interpreter with the optional dependencies hidden
(``sys.modules[name] = None`` makes ``import name`` raise ``ModuleNotFoundError``).
"""

from __future__ import annotations

import ast
import email
import os
import shutil
import subprocess
import sys
import tarfile
import textwrap
import typing
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

#: what the extras (and the test extra) install: none of them may be needed to import
#: django-arc, run its checks or migrate
OPTIONAL = (
    "redis",
    "django_redis",
    "hiredis",
    "celery",
    "kombu",
    "psycopg",
    "psycopg2",
    "django_filters",
    "drf_spectacular_sidecar",
)

BASE_PROJECT = textwrap.dedent(
    """
    import importlib
    import pkgutil
    import sys
    import types

    for name in {optional!r}:
        sys.modules[name] = None

    import django
    from django.conf import settings

    urls = types.ModuleType("base_install_urls")
    sys.modules["base_install_urls"] = urls
    settings.configure(
        DEBUG=False,
        SECRET_KEY="base-install",
        ALLOWED_HOSTS=["testserver"],
        DATABASES={{"default": {{"ENGINE": "django.db.backends.sqlite3", "NAME": ":memory:"}}}},
        DEFAULT_AUTO_FIELD="django.db.models.BigAutoField",
        INSTALLED_APPS=[
            "django.contrib.admin",
            "django.contrib.auth",
            "django.contrib.contenttypes",
            "django.contrib.sessions",
            "django.contrib.messages",
            "rest_framework",
            "drf_spectacular",
            "django_arc",
        ],
        MIDDLEWARE=[
            "django.contrib.sessions.middleware.SessionMiddleware",
            "django.middleware.common.CommonMiddleware",
            "django.contrib.auth.middleware.AuthenticationMiddleware",
            "django.contrib.messages.middleware.MessageMiddleware",
            "django_arc.middleware.ScopeMiddleware",
        ],
        TEMPLATES=[
            {{
                "BACKEND": "django.template.backends.django.DjangoTemplates",
                "APP_DIRS": True,
                "OPTIONS": {{
                    "context_processors": [
                        "django.template.context_processors.request",
                        "django.contrib.auth.context_processors.auth",
                        "django.contrib.messages.context_processors.messages",
                    ]
                }},
            }}
        ],
        ROOT_URLCONF="base_install_urls",
    )
    django.setup()

    from django.contrib import admin
    from django.core.management import call_command
    from django.urls import include, path

    import django_arc
    from django_arc import arc

    urls.urlpatterns = [path("admin/", admin.site.urls), path("api/", include(arc.urls))]
    call_command("check", fail_level="WARNING")
    call_command("migrate", verbosity=0)

    failed = []
    for module in pkgutil.walk_packages(django_arc.__path__, "django_arc."):
        try:
            importlib.import_module(module.name)
        except ImportError as exc:
            failed.append(f"{{module.name}} needs {{exc.name}}")
    print("FAILED IMPORTS:", failed)
    """
)


def run_base_project() -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "DJANGO_SETTINGS_MODULE"}
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")])
    return subprocess.run(
        [sys.executable, "-c", BASE_PROJECT.format(optional=OPTIONAL)],
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        timeout=120,
    )


def test_base_install_checks_migrates_and_imports_without_the_extras():
    """Every module but ``django_arc.tasks`` (the Celery tasks, the ``celery`` extra's own
    module) imports with no extra installed, and the checks and migrations run."""
    result = run_base_project()
    assert result.returncode == 0, result.stderr
    assert "FAILED IMPORTS: ['django_arc.tasks needs celery']" in result.stdout, result.stdout


# -- the built distributions ------------------------------------------------------------------

#: what the repository holds that is not the distribution's to copy
NOT_SOURCE = shutil.ignore_patterns(
    ".git",
    ".venv*",
    ".services",
    "__pycache__",
    "*.py[cod]",
    "build",
    "dist",
    "*.egg-info",
    "site",
    ".tox",
    ".ruff_cache",
    ".pytest_cache",
    ".hypothesis",
    "*.sqlite3",
    "results",
)

BUILD = textwrap.dedent(
    """
    import sys
    from setuptools import build_meta

    kind, out = sys.argv[1], sys.argv[2]
    print(getattr(build_meta, "build_" + kind)(out))
    """
)


def build(kind: str, source: Path, out: Path) -> Path:
    """``build_sdist`` or ``build_wheel`` of ``source``, as a PEP 517 frontend calls them."""
    result = subprocess.run(
        [sys.executable, "-c", BUILD, kind, str(out)],
        capture_output=True,
        text=True,
        cwd=source,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    # setuptools' "Package would be ignored": data in a folder that no listed package holds,
    # which a later setuptools may leave out of the wheel
    assert "would be ignored" not in result.stdout + result.stderr, result.stdout + result.stderr
    return out / result.stdout.strip().splitlines()[-1]


@pytest.fixture(scope="module")
def dists(tmp_path_factory):
    """The sdist and wheel built from a copy of the repository, and the wheel built from the
    unpacked sdist (what pip and ``python -m build`` install)."""
    from setuptools import __version__ as setuptools_version

    major, minor = (int(part) for part in setuptools_version.split(".")[:2])
    assert (major, minor) >= (70, 1), (
        f"setuptools {setuptools_version} cannot build a wheel: install the test extra "
        "(pip install -e '.[test]'), which asks for setuptools>=70.1"
    )
    tmp = tmp_path_factory.mktemp("dists")
    tree = tmp / "tree"
    shutil.copytree(ROOT, tree, ignore=NOT_SOURCE)
    sdist = build("sdist", tree, tmp / "sdist")
    wheel = build("wheel", tree, tmp / "wheel")
    with tarfile.open(sdist) as archive:
        archive.extractall(tmp / "unpacked", filter="data")
    (unpacked,) = (tmp / "unpacked").iterdir()
    wheel_of_sdist = build("wheel", unpacked, tmp / "wheel-of-sdist")
    return sdist, wheel, wheel_of_sdist


def wheel_files(wheel: Path) -> set[str]:
    with zipfile.ZipFile(wheel) as archive:
        return {name for name in archive.namelist() if not name.endswith("/")}


def source_files() -> set[str]:
    """The package as the repository holds it: every module and template."""
    package = ROOT / "django_arc"
    return {
        path.relative_to(ROOT).as_posix()
        for path in package.rglob("*")
        if path.is_file() and "__pycache__" not in path.parts and path.suffix != ".pyc"
    }


def test_the_wheel_holds_the_package_and_nothing_else(dists):
    _, wheel, _ = dists
    files = wheel_files(wheel)
    dist_info = {name for name in files if ".dist-info/" in name}
    assert files - dist_info == source_files()
    assert {name.split(".dist-info/", 1)[1] for name in dist_info} >= {
        "METADATA",
        "WHEEL",
        "RECORD",
        "top_level.txt",
        "licenses/LICENSE",
    }
    # the admin's templates and the migrations are there (a listing test that lost them
    # both would still pass the equality above if the repository lost them too)
    assert "django_arc/templates/admin/django_arc/outboxevent/change_list.html" in files
    assert "django_arc/migrations/0001_outbox.py" in files
    assert "django_arc/management/commands/arc_relay.py" in files


def test_the_sdist_builds_the_same_wheel(dists):
    sdist, wheel, wheel_of_sdist = dists
    assert wheel_files(wheel_of_sdist) == wheel_files(wheel)
    with tarfile.open(sdist) as archive:
        names = {name.split("/", 1)[1] for name in archive.getnames() if "/" in name}
    # the package and what builds it; no half of the test suite (setuptools adds
    # tests/test*.py by default, without the settings and apps they need)
    builds = {"LICENSE", "README.md", "MANIFEST.in", "setup.cfg", "pyproject.toml", "PKG-INFO"}
    assert builds <= names
    assert {name.split("/", 1)[0] for name in names} <= builds | {
        "django_arc",
        "django_arc.egg-info",
    }, names


def test_the_metadata_names_what_make_test_runs(dists):
    """Python and Django as ``make test`` runs them (3.11; Django 4.2 and 5.2), the extras the
    docs name, and the license."""
    _, wheel, _ = dists
    with zipfile.ZipFile(wheel) as archive:
        (name,) = [n for n in archive.namelist() if n.endswith(".dist-info/METADATA")]
        metadata = email.message_from_bytes(archive.read(name))
    import django_arc

    assert metadata["Version"] == django_arc.__version__
    assert metadata["Requires-Python"] == ">=3.11"
    assert set(metadata.get_all("Provides-Extra")) == {
        "sidecar",
        "redis",
        "celery",
        "postgres",
        "test",
        "dev",
    }
    classifiers = set(metadata.get_all("Classifier"))
    assert {"Framework :: Django :: 4.2", "Framework :: Django :: 5.2"} <= classifiers
    assert "Programming Language :: Python :: 3.11" in classifiers
    assert metadata["License"] == "MIT" or "MIT" in metadata.get("License-Expression", "")
    assert metadata.get_all("License-File") == ["LICENSE"]
    requires = metadata.get_all("Requires-Dist")
    core = sorted(r for r in requires if "extra ==" not in r)
    assert [r.split("<")[0].split(">")[0] for r in core] == [
        "Django",
        "djangorestframework",
        "drf-spectacular",
    ]


# -- static types -----------------------------------------------------------------------------


def test_the_wheel_says_the_package_is_typed(dists):
    """``py.typed`` (PEP 561): without it a project's mypy or pyright skips django-arc's
    annotations ("module is installed, but missing library stubs or py.typed marker") and
    every name imported from it is ``Any``."""
    _, wheel, _ = dists
    assert "django_arc/py.typed" in wheel_files(wheel)


def test_type_checkers_see_every_lazy_name():
    """``django_arc``'s names are resolved lazily (PEP 562), which a type checker does not
    run: each is imported under ``TYPE_CHECKING``, as ``name as name`` (an explicit
    re-export, which ``mypy --strict`` requires), or ``class X(Resource)`` subclasses ``Any``
    in every project checked with mypy."""
    import django_arc

    tree = ast.parse(Path(django_arc.__file__).read_text(encoding="utf-8"))
    (block,) = [
        node
        for node in tree.body
        if isinstance(node, ast.If)
        and isinstance(node.test, ast.Name)
        and node.test.id == "TYPE_CHECKING"
    ]
    exported = set()
    for node in block.body:
        assert isinstance(node, ast.ImportFrom)
        for alias in node.names:
            assert alias.asname == alias.name, ast.unparse(node)
            exported.add((alias.name, f"django_arc.{node.module or alias.name}"))
    assert exported == {(name, module) for name, (module, _) in django_arc._EXPORTS.items()}


def test_a_cached_resolver_is_typed_with_its_invalidate():
    """``cached_resolver`` returns the resolver with ``invalidate`` (the documented way to
    drop a changed membership): typed as a plain callable, ``resolver.invalidate(...)`` was
    an error for a project's type checker."""
    from django_arc.membership import cached_resolver

    returned = typing.get_type_hints(cached_resolver)["return"]
    assert {"__call__", "invalidate"} <= set(dir(returned))


# -- an extra's feature configured without the extra -----------------------------------------


@pytest.mark.parametrize("transport", ["RedisStreamsTransport", "RedisPubSubTransport"])
def test_a_redis_transport_without_redis_py_fails_manage_py_check(settings, monkeypatch, transport):
    """Before: ``check`` passed, and the transport's ``import redis`` failed at the first
    publish: the relay stopped at start, and with the outbox off every write's event was
    logged ("publishing … after commit failed") and lost."""
    from django_arc.checks import check_settings

    settings.ARC = {
        "EVENTS": {
            "TRANSPORT": f"django_arc.events.transports.{transport}",
            "OPTIONS": {"url": "redis://127.0.0.1:1/0"},
        }
    }
    assert [e.msg for e in check_settings() if e.id == "arc.E008"] == []
    monkeypatch.setitem(sys.modules, "redis", None)
    messages = [e.msg for e in check_settings() if e.id == "arc.E008"]
    assert any("django-arc[redis]" in m for m in messages), messages


def test_a_browsable_renderer_without_rest_framework_installed_is_arc_w011(settings):
    """``INSTALLED_APPS += ["django_arc"]`` alone passed ``check``, and every request from a
    browser (``Accept: text/html``) to a generated view answered 500
    ``TemplateDoesNotExist: rest_framework/api.html``: DRF's browsable API renders DRF's
    templates, found only when ``rest_framework`` is an installed app."""
    from django_arc.checks import check_rest_framework_installed

    assert check_rest_framework_installed() == []
    settings.INSTALLED_APPS = [app for app in settings.INSTALLED_APPS if app != "rest_framework"]
    (warning,) = check_rest_framework_installed()
    assert warning.id == "arc.W011"
    assert "'rest_framework'" in warning.hint
    settings.REST_FRAMEWORK = {
        **getattr(settings, "REST_FRAMEWORK", {}),
        "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    }
    assert [w.id for w in check_rest_framework_installed()] == []


def test_a_resource_instance_is_typed_with_its_model_and_name():
    """Presets' and hooks' ``resource`` is a built resource, which always has its model and
    name: typed ``type[Model] | None``, every ``resource.model._meta`` in a project's preset
    was an error for its type checker (pyright: ``"_meta" is not a known attribute of
    "None"``)."""
    from django.db import models

    from django_arc import Resource

    hints = typing.get_type_hints(Resource)
    assert hints["model"] == type[models.Model]
    assert hints["name"] is str


def test_arc_w011_reads_each_resources_renderers_and_the_admin_renderer(settings):
    """arc.W011 reads the renderers that answer resources: the project's defaults, and a
    resource's own ``renderer_classes`` (a JSON-only project whose one resource offers the
    browsable API); DRF's ``AdminRenderer`` renders DRF's templates as the browsable API
    does."""
    from rest_framework.renderers import BrowsableAPIRenderer, JSONRenderer

    from django_arc.checks import check_rest_framework_installed

    settings.INSTALLED_APPS = [app for app in settings.INSTALLED_APPS if app != "rest_framework"]
    settings.REST_FRAMEWORK = {
        **getattr(settings, "REST_FRAMEWORK", {}),
        "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.AdminRenderer"],
    }
    (warning,) = check_rest_framework_installed()
    assert warning.msg.startswith("rest_framework.renderers.AdminRenderer renders DRF's")
    settings.REST_FRAMEWORK = {
        **settings.REST_FRAMEWORK,
        "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    }
    assert check_rest_framework_installed() == []
    # the renderers the resource's ViewSet serves with (its own renderer_classes, copied
    # from the resource when the ViewSet is built), as DRF reads them
    from django_arc.sites import _all_sites

    viewset = next(r for site in _all_sites for r in site.resources).as_viewset()
    renderers = viewset.__dict__.get("renderer_classes")
    viewset.renderer_classes = [JSONRenderer, BrowsableAPIRenderer]
    try:
        (warning,) = check_rest_framework_installed()
    finally:
        if renderers is None:
            del viewset.renderer_classes
        else:
            viewset.renderer_classes = renderers
    assert warning.id == "arc.W011"
    assert warning.msg.startswith("rest_framework.renderers.BrowsableAPIRenderer renders DRF's")
