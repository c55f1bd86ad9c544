"""What django-arc logs and reports about itself (docs/errors.md "Logging"): the records, their
logger, their level and their text, as an operator's handlers receive them."""

import logging

import pytest

from tests.helpers import assert_error

pytestmark = pytest.mark.django_db


def test_a_client_path_is_escaped_in_django_arc_log_lines(api, caplog):
    """A path is the client's: ``%0A`` decodes to a newline in ``request.path``, written
    raw into a log line it forged a second line (Django escapes the path of its own lines,
    CVE-2025-48432). Escaped as Django escapes it."""
    caplog.set_level(logging.INFO, logger="django_arc")
    assert_error(api.get("/api/books/abc%0A%5BERROR%5D%20forged%1B[31m/"), 404, "NOT_FOUND")
    (record,) = [r for r in caplog.records if r.name == "django_arc"]
    message = record.getMessage()
    assert "\n" not in message and "\x1b" not in message, message
    assert message.startswith("404 for /api/books/abc\\n[ERROR] forged\\x1b[31m/: ")
