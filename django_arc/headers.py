"""The headers an answer carries of its own, beyond those DRF gives every answer of its view.

Two features keep an answer to give it again later: the query cache (a HIT) and idempotency
keys (a replay). Both keep its bytes and content type; what else the route, its pagination
class or an error handler put on it (``Location``, ``Content-Disposition``, ``Link``,
``X-Total-Count``, ``Retry-After``) must be kept too or the answer given again is another
one. DRF's own per-view headers (``Allow``, ``Vary: Accept``) are added again to every answer
by ``finalize_response``, so they are not the answer's own.
"""

from __future__ import annotations

from typing import Any


def own_headers(view: Any, response: Any) -> list[tuple[str, str]]:
    """``(name, value)`` of every header of ``response`` but its ``Content-Type`` whose value
    is not what DRF gives every answer of ``view``. Cookies are not headers here: see
    ``response.cookies``."""
    expected = view.default_response_headers
    return [
        (name, value)
        for name, value in response.items()
        if name != "Content-Type" and expected.get(name) != value
    ]
