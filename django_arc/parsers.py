"""The request-body parser resources use in place of DRF's ``JSONParser``."""

from __future__ import annotations

from typing import Any

from rest_framework.exceptions import ParseError
from rest_framework.parsers import FormParser, JSONParser, MultiPartParser


class ArcJSONParser(JSONParser):
    """DRF's JSON parser with the nesting of a body bounded.

    A body like ``[[[[…]]]]`` a hundred thousand levels deep makes ``json`` raise
    ``RecursionError``, which DRF does not catch (a 500); one a few hundred levels deep
    parses, then exhausts the recursion limit later, in validation or in encoding the row's
    event. Both are a 400 here. 128 levels is serde_json's default limit too.
    """

    max_depth = 128

    def parse(self, stream: Any, media_type: str | None = None, parser_context: Any = None) -> Any:
        try:
            data = super().parse(stream, media_type, parser_context)
            too_deep = _deeper_than(data, self.max_depth)
        except RecursionError:
            too_deep = True
        if too_deep:
            raise ParseError(f"JSON parse error - nested deeper than {self.max_depth} levels")
        return data


def _deeper_than(value: Any, limit: int) -> bool:
    # iterative: the point is not to recurse
    stack = [(value, 1)] if isinstance(value, (dict, list)) else []
    while stack:
        node, depth = stack.pop()
        children = node.values() if isinstance(node, dict) else node
        if depth > limit:
            return True
        stack.extend((c, depth + 1) for c in children if isinstance(c, (dict, list)))
    return False


class _Decoded:
    """A form parser that answers a body its declared charset cannot decode with a 400.

    Django decodes form fields with ``errors="replace"``, which a few codecs Python knows
    (``idna``, ``punycode``) do not support: a ``Content-Type: …; charset=idna`` body raised
    ``UnicodeError`` from the parser, a 500."""

    def parse(self, stream: Any, media_type: str | None = None, parser_context: Any = None) -> Any:
        try:
            return super().parse(stream, media_type, parser_context)  # type: ignore[misc]
        except UnicodeError:
            raise ParseError(
                "Form parse error - the body cannot be decoded with its charset"
            ) from None


class ArcFormParser(_Decoded, FormParser):
    """DRF's form parser; see :class:`_Decoded`."""


class ArcMultiPartParser(_Decoded, MultiPartParser):
    """DRF's multipart parser; see :class:`_Decoded`."""
