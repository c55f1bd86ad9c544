"""rev-fixes57: review of rev-numbers, rev-fixes54 and rev-generic."""

from __future__ import annotations

import pytest

from tests.helpers import assert_error
from tests.redis_support import idempotency_store
from tests.test_rev_numbers import rev_num_api, rev_num_post  # noqa: F401
from tests.testapp.models import RevNumTally

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize("store", ["database", "cache"])
@pytest.mark.parametrize(
    "first, second",
    [
        ("12345678901234567.891", "12345678901234567.8910"),
        ("12345678901234567.891", "1.2345678901234567891e16"),
    ],
)
def test_rf57_one_inexact_number_spelled_two_ways_is_one_body(rev_num_api, store, first, second):  # noqa: F811
    """A number no float holds was fingerprinted by its text, so the same number with a
    trailing zero or an exponent under the same key was 422 IDEMPOTENCY_KEY_REUSED, though
    the decimal stored is the same (and 1.1 / 1.10 of a float-held number replay)."""
    with idempotency_store(store):
        one = rev_num_post(rev_num_api, f'{{"wide": {first}}}', HTTP_IDEMPOTENCY_KEY="s")
        assert one.status_code == 201, one.content
        two = rev_num_post(rev_num_api, f'{{"wide": {second}}}', HTTP_IDEMPOTENCY_KEY="s")
        assert two.status_code == 201, two.content
        assert two["X-Idempotency-Replayed"] == "true"
        assert two.content == one.content
        other = rev_num_post(
            rev_num_api, '{"wide": 12345678901234567.892}', HTTP_IDEMPOTENCY_KEY="s"
        )
        assert_error(other, 422, "IDEMPOTENCY_KEY_REUSED")
    assert RevNumTally.objects.count() == 1
