"""The example project's OpenAPI schema, compared with the committed one (drf-spectacular's own
test style): any change to what the API documents shows up as a diff in review.

The schema is generated the way a user would, ``manage.py spectacular --validate
--fail-on-warn`` in the example project with its own settings (a child process, so the test
app's resources are not part of it). After an intended change, regenerate the file with::

    ARC_UPDATE_GOLDEN=1 .venv/bin/python -m pytest tests/test_openapi_golden.py

and commit ``tests/openapi/example_project.yaml`` with the change.
"""

from __future__ import annotations

import difflib
import os
from pathlib import Path

import django
import pytest

from tests.example_server import example_env, run_manage

GOLDEN = Path(__file__).resolve().parent / "openapi" / "example_project.yaml"


@pytest.fixture(scope="module")
def generated(tmp_path_factory) -> str:
    tmp = tmp_path_factory.mktemp("golden")
    env, cleanup = example_env(tmp, database=False)
    try:
        out = tmp / "schema.yaml"
        run_manage(env, "spectacular", "--validate", "--fail-on-warn", "--file", str(out))
        return out.read_text()
    finally:
        cleanup()


@pytest.mark.skipif(
    django.VERSION < (5, 0),
    reason="the committed schema is Django 5's (on SQLite, Django 4.2 gives integer fields "
    "no range validators, so 6 lines differ); test_golden_schema_documents_the_example_api "
    "still generates and validates it here",
)
def test_example_project_schema_matches_the_committed_one(generated):
    """Compared on every Django 5 the pins admit, not only the newest: Django 5.0 and 5.1
    generate the committed file byte for byte (SQLite's integer ranges, whose absence makes
    Django 4.2's differ, came with 5.0), and a skip from 5.2 down hid any drift there."""
    if os.environ.get("ARC_UPDATE_GOLDEN") == "1":
        GOLDEN.parent.mkdir(exist_ok=True)
        GOLDEN.write_text(generated)
    expected = GOLDEN.read_text()
    if generated != expected:
        diff = "".join(
            difflib.unified_diff(
                expected.splitlines(keepends=True),
                generated.splitlines(keepends=True),
                "committed",
                "generated",
                n=2,
            )
        )
        pytest.fail(
            f"The example project's OpenAPI schema changed ({GOLDEN.name}). If intended, "
            "regenerate it with ARC_UPDATE_GOLDEN=1 (see this module's docstring).\n" + diff[:6000]
        )


def test_golden_schema_documents_the_example_api(generated):
    """The committed file is the real thing, not an empty placeholder."""
    for text in (
        "/api/products/{id}/:",
        "operationId: orders_partial_update",
        "name: price[gte]",
        "name: status[in]",
        "name: X-Organization-Id",
        "format: uuid",
        "PaginatedProductList:",
        "ArcError:",
        "cookieAuth:",
    ):
        assert text in generated, text
    assert "Caches the result" not in generated


def test_the_docs_quote_the_golden_schema():
    """Every YAML excerpt in docs/openapi.md is a verbatim slice of the committed schema."""
    import re

    page = (Path(__file__).resolve().parent.parent / "docs" / "openapi.md").read_text()
    excerpts = re.findall(r"```yaml\n(.*?)```", page, flags=re.S)
    assert len(excerpts) >= 4
    golden = GOLDEN.read_text()
    for excerpt in excerpts:
        assert excerpt in golden, excerpt
