"""Parts of the keys django-arc writes to a project's Django caches (the membership cache,
the throttles' buckets), whatever backend those are.

A user's pk is the project's (a text pk of any length, with spaces), and an organization id
may be a header as the client sent it: memcached refuses keys over 250 bytes or with spaces
and control characters. Such a value goes into a key as a digest, marked with a character
no plain value has, so no plain value (an organization header chosen to look like a
digest) can name another value's entry.
"""

from __future__ import annotations

import hashlib
import re
from typing import Any

#: a value kept as it is in a key (an integer pk, a UUID, a usual organization id)
_PLAIN = re.compile(r"[A-Za-z0-9._-]{1,64}")


def key_part(value: Any) -> str:
    """``value`` as a part of a cache key every backend takes: as it is when short and
    plain, else ``~`` and a digest of it."""
    text = str(value)
    if _PLAIN.fullmatch(text):
        return text
    return "~" + hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:32]
