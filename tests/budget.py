"""How many examples the property-based and stateful tests try in one pytest run.

``make test`` runs the whole suite four times: SQLite and PostgreSQL, under the current Django
and again under Django 4.2, the supported floor. These tests' time is almost all in their
examples (a stateful machine's 40 examples of 40 steps each is minutes), and the code they
explore is django-arc's own, the same under both Djangos: a floor run repeats with a quarter
of the examples what the current Django's runs explore in full, as the schemathesis test's
floor runs replay only its examples and links. ``ARC_EXAMPLES_SCALE`` sets the fraction for
a run of one's own (``1`` for a full exploration on Django 4.2).
"""

from __future__ import annotations

import math
import os

import django
from hypothesis import settings

#: the fraction of each test's examples this run tries
SCALE = float(os.environ.get("ARC_EXAMPLES_SCALE") or (1.0 if django.VERSION >= (5,) else 0.25))
if not 0 < SCALE <= 1:
    raise ValueError(f"ARC_EXAMPLES_SCALE must be in (0, 1], not {SCALE}")
#: fewer than this explores too little to be worth the test's set-up
FEWEST = 3

if SCALE < 1:
    # A reduced run draws the same examples every time (each test's own, from its name): a
    # test asserting that its examples reached some outcome at least so often, sure with the
    # full count, would otherwise pass or fail by the draw. Loaded as the default profile, so
    # every ``settings(...)`` made after this import and not naming ``derandomize`` has it.
    settings.register_profile("reduced", derandomize=True)
    settings.load_profile("reduced")


def examples(full: int) -> int:
    """The ``max_examples`` of a test that tries ``full`` examples in a full run."""
    return max(FEWEST, math.ceil(full * SCALE))
