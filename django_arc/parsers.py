"""The request-body parsers resources use in place of DRF's ``JSONParser``, ``FormParser``
and ``MultiPartParser``.

Two of their bounds are DRF's own on its newest releases and are kept here so that every
DRF the package allows (``djangorestframework>=3.16``) enforces them: a JSON or form body
is read through ``request.body``, where Django applies ``DATA_UPLOAD_MAX_MEMORY_SIZE`` (DRF
3.16.1), and a charset that is not a text encoding is refused (DRF 3.18.2).
"""

from __future__ import annotations

import codecs
import decimal
import io
from typing import Any

from django.conf import settings
from django.http import HttpRequest
from rest_framework.exceptions import ParseError
from rest_framework.parsers import FormParser, JSONParser, MultiPartParser
from rest_framework.settings import api_settings
from rest_framework.utils import json

from .exceptions import ArcError


class JSONNumber(float):
    """A JSON number with a fraction or an exponent: the binary float JSON readers make of
    it (JavaScript's, arc's), which it is everywhere a float is used, and the ``text`` it
    was written as, which a decimal field reads instead. ``12345678901234567.891`` for a
    30-digit ``DecimalField`` was the float ``1.2345678901234568e16`` turned into a decimal
    (stored with its last digits changed, silently), and ``1e-400`` was ``0.0`` (stored as
    zero, where the string ``"1e-400"`` was refused for its digits)."""

    __slots__ = ("text",)

    def __new__(cls, text: str) -> JSONNumber:
        number = super().__new__(cls, text)
        number.text = text
        return number

    def __reduce__(self) -> tuple[Any, ...]:
        return (JSONNumber, (self.text,))

    def exact(self) -> bool:
        """Whether the float is the number its text spells (``1.10`` is 1.1; ``0.1`` is the
        float every reader makes of it), so the float alone tells this number from others."""
        # Decimal() reads any JSON number exactly (no context: no exponent is too large)
        return decimal.Decimal(self.text) == decimal.Decimal(float.__repr__(self))


class ArcJSONParser(JSONParser):
    """DRF's JSON parser with the nesting of a body bounded.

    A body like ``[[[[…]]]]`` a hundred thousand levels deep makes ``json`` raise
    ``RecursionError``, which DRF does not catch (a 500); one a few hundred levels deep
    parses, then exhausts the recursion limit later, in validation or in encoding the row's
    event. Both are a 400 here. 128 levels is serde_json's default limit too.
    """

    max_depth = 128

    def parse(self, stream: Any, media_type: str | None = None, parser_context: Any = None) -> Any:
        encoding = _text_encoding(parser_context)
        stream = _whole_body(stream)
        if codecs.lookup(encoding).name == "utf-8":
            stream = _without_bom(stream)
        try:
            if self._parses_as_drf():
                data = self._load(stream, encoding)
            else:  # a project's parse() under these bounds (generics._bounded_class)
                data = super().parse(stream, media_type, parser_context)
            too_deep = nested_deeper_than(data, self.max_depth)
        except RecursionError:
            too_deep = True
        except ParseError as exc:
            # DRF's "JSON parse error - <json's message>", raised while handling json's
            # error: the same message, and json's own (line, column, character) as details
            cause = exc.__context__
            raise BodyParseError(str(exc.detail), str(cause) if cause else None) from cause
        if too_deep:
            reason = f"nested deeper than {self.max_depth} levels"
            raise BodyParseError(f"JSON parse error - {reason}", reason)
        return data

    def _parses_as_drf(self) -> bool:
        """Whether the ``parse()`` after this one is DRF's own: then the body is read here
        (:meth:`_load`); a project's subclass of ``JSONParser`` keeps its own reading."""
        following = type(self).__mro__[type(self).__mro__.index(ArcJSONParser) + 1 :]
        return next(c for c in following if "parse" in vars(c)) is JSONParser

    def _load(self, stream: Any, encoding: str) -> Any:
        """DRF's ``JSONParser.parse`` (its error, its ``STRICT_JSON`` refusal of ``NaN`` and
        the infinities) with each number that has a fraction or exponent a
        :class:`JSONNumber`."""
        try:
            decoded = codecs.getreader(encoding)(stream)
            constant = json.strict_constant if self.strict else None
            return json.load(decoded, parse_constant=constant, parse_float=JSONNumber)
        except ValueError as exc:
            raise ParseError(f"JSON parse error - {exc}") from exc


class BodyParseError(ArcError, ParseError):
    """A JSON body that does not parse: 400 ``VALIDATION_ERROR`` (DRF's ``ParseError``
    still, for code that catches it) whose ``details`` say where, as SPEC spells
    validation details: the non-field key (the whole body is no field, as for a body that
    is no JSON object) and a list of one message, json's own, which names the line, the
    column and the character (``Expecting value: line 1 column 10 (char 9)``) or, for a
    body its charset cannot decode, the byte's position."""

    def __init__(self, message: str, where: str | None) -> None:
        details = {api_settings.NON_FIELD_ERRORS_KEY: [where]} if where else None
        super().__init__("VALIDATION_ERROR", message, 400, details)


def _without_bom(stream: Any) -> Any:
    """``stream`` past a UTF-8 byte order mark it starts with. RFC 8259 §8.1 lets a parser
    ignore one, and Python's ``json`` refuses it ("Unexpected UTF-8 BOM"): a 400 for a body
    a Windows tool wrote, which every other reading of the same JSON accepts. Only the first
    three bytes: a BOM anywhere else is no whitespace JSON allows."""
    seekable = getattr(stream, "seekable", None)
    if seekable is None or not seekable():  # a project parser's own stream, read whole
        stream = io.BytesIO(stream.read())
    start = stream.tell()
    if stream.read(3) != codecs.BOM_UTF8:
        stream.seek(start)
    return stream


def _text_encoding(parser_context: Any) -> str:
    """The charset the body is decoded with, if it is a text encoding; else a 400.

    Django accepts any charset ``codecs.lookup()`` knows, ``bz2_codec`` and ``zlib_codec``
    included: on DRF before 3.18.2 a JSON body in one of those was decompressed after the
    memory limit had been checked against its compressed size (a small request, a body
    without bound), and a form body in one raised ``LookupError`` (a 500). The message is
    DRF's own on the releases that refuse them."""
    encoding = (parser_context or {}).get("encoding", settings.DEFAULT_CHARSET)
    try:
        "".encode(encoding)  # unlike codecs.getreader(), str.encode() refuses non-text codecs
    except (LookupError, UnicodeError):
        raise ParseError(
            f'Unsupported charset "{encoding}" in request Content-Type header.'
        ) from None
    return encoding


def _whole_body(stream: Any) -> Any:
    """``stream``, or the request's body when DRF hands the parser the request itself.

    DRF before 3.16.1 passes a request nobody has read yet as the stream, and reading it
    directly skips Django's ``DATA_UPLOAD_MAX_MEMORY_SIZE``: a body of any size was parsed.
    ``request.body`` applies the limit (``RequestDataTooBig``, a 413)."""
    if isinstance(stream, HttpRequest):
        return io.BytesIO(stream.body)
    return stream


def nested_deeper_than(value: Any, limit: int) -> bool:
    """Whether the JSON value ``value`` (dicts and lists) nests more than ``limit`` levels
    deep: the bound :class:`ArcJSONParser` puts on a body, and a form field's JSON text is
    read under (:mod:`django_arc.serializers`). Iterative: the point is not to recurse."""
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
    ``UnicodeError`` from the parser, a 500. A charset that is no text encoding at all is
    refused first (:func:`_text_encoding`)."""

    def parse(self, stream: Any, media_type: str | None = None, parser_context: Any = None) -> Any:
        _text_encoding(parser_context)
        try:
            return super().parse(stream, media_type, parser_context)  # type: ignore[misc]
        except UnicodeError:
            raise ParseError(
                "Form parse error - the body cannot be decoded with its charset"
            ) from None


class ArcFormParser(_Decoded, FormParser):
    """DRF's form parser; see :class:`_Decoded`. The body is read under Django's memory
    limit (:func:`_whole_body`)."""

    def parse(self, stream: Any, media_type: str | None = None, parser_context: Any = None) -> Any:
        return super().parse(_whole_body(stream), media_type, parser_context)


class ArcMultiPartParser(_Decoded, MultiPartParser):
    """DRF's multipart parser; see :class:`_Decoded`. Where no field takes a file
    (:func:`takes_files`), the body is read under Django's memory limit, as a JSON or form
    body is (:func:`_whole_body`): ``DATA_UPLOAD_MAX_MEMORY_SIZE`` leaves a multipart
    body's files out, so a create on a resource without file fields read a file part of
    any size whole (spooled to disk past ``FILE_UPLOAD_MAX_MEMORY_SIZE``), then ignored it."""

    def parse(self, stream: Any, media_type: str | None = None, parser_context: Any = None) -> Any:
        if not takes_files((parser_context or {}).get("view")):
            stream = _whole_body(stream)
        return super().parse(stream, media_type, parser_context)


def takes_files(view: Any) -> bool:
    """Whether a multipart body sent to ``view`` may carry files past the memory limit:
    outside a resource's views (as DRF reads them), on a route or resource naming its own
    parsers (an upload route), on a project's ``@route`` (its body is its own), and on a
    resource whose serializer or actions' ``input`` has a file field (``takes_files``)."""
    resource = getattr(view, "resource", None)
    if resource is None or "parser_classes" in vars(view) or resource.parser_classes is not None:
        return True
    spec = getattr(view, "route_specs", {}).get(getattr(view, "action", None))
    if spec is not None:
        from .presets.base import Preset

        if not isinstance(getattr(spec.handler, "__self__", None), Preset):
            return True
    return bool(resource.takes_files)
