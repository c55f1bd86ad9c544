"""django-arc as its users receive it: the base install, without the extras.

The test environment has every extra installed, so a module-level ``import redis`` in a
module every project imports passes the whole suite and fails the first project installed
without the ``redis`` extra (``manage.py check`` ended in ``ModuleNotFoundError``). These
run a project in a fresh interpreter with the optional dependencies hidden
(``sys.modules[name] = None`` makes ``import name`` raise ``ModuleNotFoundError``).
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

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
