"""One error shape for every failure: ``{"success": false, "error", "code", "details", "requestId"}``.

arc 2.9 has five error shapes; django-arc unifies on its thrown-error shape. DRF's own
exceptions (parse errors, 405, 415, throttling, authentication) are translated here so a client
only ever has to understand one body.
"""

from __future__ import annotations

import logging
import os
import re
from typing import Any
from urllib.parse import unquote_plus

from django.conf import settings
from django.core.exceptions import (
    DisallowedHost,
    RequestDataTooBig,
    SuspiciousOperation,
    TooManyFieldsSent,
)
from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.core.exceptions import ValidationError as DjangoValidationError
from django.core.signals import got_request_exception
from django.db import IntegrityError
from django.db.models import ProtectedError, RestrictedError
from django.http import Http404
from django.utils.log import log_response
from rest_framework import exceptions as drf_exceptions
from rest_framework.response import Response
from rest_framework.serializers import as_serializer_error
from rest_framework.settings import api_settings

from .logs import log_text
from .ranges import infinite_fields, refused_infinity

logger = logging.getLogger("django_arc")

#: the message of the 409 ``CONFLICT`` a write the database refuses (an ``IntegrityError``)
#: answers, for the whole request or, in a bulk write saving row by row, for its item
CONFLICT_MESSAGE = "The request conflicts with existing data"

REQUEST_ID_HEADER = "X-Request-Id"
#: a well-formed incoming request id, matched whole (``fullmatch``: a ``$`` would also
#: match before a trailing newline, which no header value or 128-character column takes)
_REQUEST_ID_RE = re.compile(r"[A-Za-z0-9_.:-]{1,128}")


#: a delete other rows block: those protecting it, or rows its cascade would remove that the
#: caller may not delete; one message for both, naming none of them
STILL_REFERRED_TO = "Cannot delete: other records still refer to this one"


class ArcError(drf_exceptions.APIException):
    """An error with a stable ``code`` that reaches the client in the error envelope.

    Raise it from hooks, actions and routes: ``raise ArcError("OUT_OF_STOCK", "No stock", 409)``.
    Raised inside a write, it rolls the write (and its event) back. It is a DRF
    ``APIException``, so DRF machinery (browsable API, other exception handlers) understands it.
    ``headers`` go on the error response (``Retry-After`` of a 409 ``IDEMPOTENCY_CONFLICT``).
    """

    def __init__(
        self,
        code: str,
        message: str,
        status: int = 400,
        details: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(detail=message, code=code)
        self.status_code = status
        self.code = code
        self.message = message
        self.status = status
        self.details = details
        self.headers = headers

    def __repr__(self) -> str:
        return f"ArcError({self.code!r}, {self.message!r}, status={self.status})"


class InvalidQuery(ArcError):
    """A query-string parameter that cannot be honoured; ``details`` names it."""

    def __init__(self, param: str, message: str) -> None:
        super().__init__(
            "INVALID_QUERY", f"Invalid query parameter '{param}': {message}", 400, {param: message}
        )


class ShortCircuit(Exception):  # noqa: N818 - not an error: an answer given early
    """Raised from the view's ``initial()`` to answer without running the route: a replayed
    idempotent response, a query-cache hit. The view returns ``response`` as it is."""

    def __init__(self, response: Any) -> None:
        super().__init__("short circuit")
        self.response = response


class NotFound(ArcError):
    """The one 404 body, whether a row is absent, filtered by permission or in another tenant."""

    def __init__(self, reason: str = "") -> None:
        super().__init__("NOT_FOUND", "Resource not found", 404)
        self.reason = reason


class RowsGone(ArcError):
    """The 400 a bulk request gets for the rows it names (its ``key`` list, in order) that
    another request deleted while it ran: each the indexed "Not found." of a row absent
    when it was read. ``present`` holds the primary keys still there."""

    def __init__(self, key: str, pks: list[Any], present: set[Any]) -> None:
        gone = {str(i): {"id": ["Not found."]} for i, pk in enumerate(pks) if pk not in present}
        super().__init__("VALIDATION_ERROR", "Validation failed", 400, {key: gone})


class ServerFault(Exception):  # noqa: N818 - the server's fault, named where it was found
    """A fault of the server's own code that arc found and can place (a hook that left the
    database transaction aborted): answered and reported as any 500 (``INTERNAL_ERROR``,
    ``got_request_exception``, an ERROR on ``django.request`` with the message), with
    ``details`` saying where for a bulk item (``{"items": {"3": {...}}}``; none for a write
    of one row), never the message, which is for the operator."""

    def __init__(self, message: str, details: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.details = details

    @staticmethod
    def item_details(key: str, index: Any) -> dict[str, Any]:
        """The ``details`` naming item ``index`` of the body's list ``key`` as the one at
        fault (or, for rows the client never listed, such as a filter's, a row by its id
        under ``key``), with the answer the client gets for any 500 (never the message)."""
        return {key: {str(index): {"code": "INTERNAL_ERROR", "error": "Internal server error"}}}


#: a random 128-bit number with the bits of a version 4 UUID (RFC 9562) set
_UUID4_CLEAR = ~((0xF000 << 64) | (0xC000 << 48))
_UUID4_SET = (0x4000 << 64) | (0x8000 << 48)


def conflict_error(exc: IntegrityError, where: str) -> ArcError:
    """The 409 ``CONFLICT`` a write the database refused answers (``exc``: an
    ``IntegrityError``; Django's ``ProtectedError``/``RestrictedError``, a delete refused for
    the rows still referring to it, are ones too), for the whole request or, in a bulk
    write saving row by row, for its item; the database's own message, which may quote the
    row's values, is logged (``where``: the request's path, or the item), never answered.
    ``where`` is escaped here as the message is: an item is named by its lookup value in a
    ``filter`` bulk update, text the client chose (a newline in it forged a line)."""
    if isinstance(exc, (ProtectedError, RestrictedError)):
        return ArcError("CONFLICT", STILL_REFERRED_TO, 409)
    logger.warning("Integrity error on %s: %s", log_text(where), log_text(exc))
    return ArcError("CONFLICT", CONFLICT_MESSAGE, 409)


def new_request_id() -> str:
    """A fresh random UUID (version 4) in its usual text form, as ``str(uuid.uuid4())``
    writes it, without building the ``UUID`` object: every response carries one."""
    h = "%032x" % (int.from_bytes(os.urandom(16)) & _UUID4_CLEAR | _UUID4_SET)
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def get_request_id(request: Any) -> str:
    """The request's id: a well-formed incoming ``X-Request-Id``, else a fresh UUID.

    Cached on the underlying Django request so the envelope, the response header and the
    events' correlation id all agree.
    """
    django_request = getattr(request, "_request", request)
    rid = getattr(django_request, "arc_request_id", None)
    if rid is None:
        incoming = django_request.META.get("HTTP_X_REQUEST_ID", "")
        rid = incoming if incoming and _REQUEST_ID_RE.fullmatch(incoming) else new_request_id()
        django_request.arc_request_id = rid
    return rid


#: a lone surrogate: no encoding writes it (see :func:`_encodable`)
_SURROGATE = re.compile("[\ud800-\udfff]")


def _encodable(value: Any) -> Any:
    """``value`` (a message, or details of strings, lists and dicts) with each lone surrogate
    as U+FFFD. Error messages quote what the client sent (DRF's ``"x" is not a valid
    choice.``, a bulk filter's name), and a JSON body can carry a lone surrogate, which the
    response cannot be encoded with: rendering the error raised from the view, a 500."""
    if isinstance(value, str):
        return _SURROGATE.sub("\N{REPLACEMENT CHARACTER}", value)
    if isinstance(value, dict):
        return {_encodable(k): _encodable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_encodable(v) for v in value]
    return value


def _path(request: Any) -> str:
    return log_text(getattr(request, "path", "?"))


def error_body(request: Any, code: str, message: str, details: Any = None) -> dict[str, Any]:
    body: dict[str, Any] = {"success": False, "error": _encodable(message), "code": code}
    if details:
        body["details"] = _encodable(details)
    body["requestId"] = get_request_id(request) if request is not None else new_request_id()
    return body


def error_response(
    request: Any,
    code: str,
    message: str,
    status_code: int,
    details: Any = None,
    headers: dict[str, str] | None = None,
) -> Response:
    return Response(
        error_body(request, code, message, details), status=status_code, headers=headers
    )


#: the code of each DRF exception's kind (its status is the exception's own)
_DRF_CODES = {
    drf_exceptions.ParseError: "VALIDATION_ERROR",
    drf_exceptions.NotAuthenticated: "UNAUTHORIZED",
    drf_exceptions.AuthenticationFailed: "UNAUTHORIZED",
    drf_exceptions.PermissionDenied: "FORBIDDEN",
    drf_exceptions.NotFound: "NOT_FOUND",
    drf_exceptions.MethodNotAllowed: "METHOD_NOT_ALLOWED",
    drf_exceptions.NotAcceptable: "NOT_ACCEPTABLE",
    drf_exceptions.UnsupportedMediaType: "UNSUPPORTED_MEDIA_TYPE",
    drf_exceptions.Throttled: "THROTTLED",
}


def as_arc_error(exc: drf_exceptions.APIException | DjangoPermissionDenied) -> ArcError:
    """``exc`` as the ``ArcError`` :func:`exception_handler` answers it with: its code,
    message and status (an ``ArcError`` as it is). A refusal a project raises the way DRF or
    Django spell it (``PermissionDenied``, ``NotAuthenticated``) is listed as arc lists its
    own: a bulk item's. Its headers are the answer's: a throttle's ``Retry-After``, the
    challenge of a 401 that names one. Not for validation errors, whose details are the
    answer."""
    if isinstance(exc, ArcError):
        return exc
    if isinstance(exc, DjangoPermissionDenied):
        return ArcError("FORBIDDEN", str(exc) or "Permission denied", 403)
    code, status_code = "ERROR", exc.status_code
    for klass, mapped in _DRF_CODES.items():
        if isinstance(exc, klass):
            # the code by its kind; the status its own: a project's subclass with a status
            # of its own (a ``NotFound`` answering 410 Gone) keeps it. Whether a refused
            # row may be told apart from a missing one is asked before (``may_read``): a
            # row the caller may not read is refused with arc's 404 instead
            code = mapped
            break
    if isinstance(exc, (drf_exceptions.NotAuthenticated, drf_exceptions.AuthenticationFailed)):
        # DRF downgrades these to 403 when no authenticator sends WWW-Authenticate
        # (session auth); arc's contract is 401 for "who are you?" either way.
        status_code = 401
    headers: dict[str, str] = {}
    if isinstance(exc, drf_exceptions.Throttled) and exc.wait is not None:
        headers["Retry-After"] = str(int(exc.wait))
    if status_code == 401 and getattr(exc, "auth_header", None):
        headers["WWW-Authenticate"] = exc.auth_header
    detail = exc.detail
    message = str(detail) if not isinstance(detail, (dict, list)) else "Request failed"
    return ArcError(code, message, status_code, None, headers or None)


def flatten_validation(detail: Any) -> Any:
    """DRF's ErrorDetail tree → plain ``field: [messages]`` (nested for bulk items).

    A list of objects' errors (a nested ``many=True`` serializer's) is keyed by the index of
    each item that failed, as DRF 3.18 writes it and as bulk bodies are: DRF before 3.18
    lists every item, ``{}`` for one that passed, so one body was answered in two shapes
    depending on the DRF a project runs."""
    if isinstance(detail, dict):
        return {str(k): flatten_validation(v) for k, v in detail.items()}
    if isinstance(detail, list):
        if all(not isinstance(item, (dict, list)) for item in detail):
            return [str(item) for item in detail]
        if all(isinstance(item, dict) for item in detail):
            return {str(i): flatten_validation(item) for i, item in enumerate(detail) if item}
        return [flatten_validation(item) for item in detail]
    return [str(detail)]


#: The challenge of a 401 when no authentication class offers one (session cookies have no
#: registered HTTP scheme); RFC 9110 requires at least one on every 401.
FALLBACK_CHALLENGE = 'Session realm="api"'


def authenticate_challenge(request: Any) -> str:
    """The ``WWW-Authenticate`` value of a 401: the first challenge the request's
    authentication classes offer (DRF asks only the first; a session class offers none),
    else :data:`FALLBACK_CHALLENGE`."""
    for authenticator in getattr(request, "authenticators", None) or ():
        challenge = authenticator.authenticate_header(request)
        if challenge:
            return challenge
    return FALLBACK_CHALLENGE


def exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    """DRF exception handler producing the arc error envelope for every error.

    Installed on every generated ViewSet (``get_exception_handler``) so it applies whatever
    the project's ``REST_FRAMEWORK["EXCEPTION_HANDLER"]`` is; projects may also set it globally.
    Every 401 carries a ``WWW-Authenticate`` challenge.
    """
    response = _error_response(exc, context)
    if response is not None and response.status_code == 401:
        if "WWW-Authenticate" not in response:
            response["WWW-Authenticate"] = authenticate_challenge(context.get("request"))
    return response


def _first_query_parameter_past_the_limit(request: Any) -> str | None:
    """The name of the first query parameter past ``DATA_UPLOAD_MAX_NUMBER_FIELDS``, if the
    request's query string holds more (Django's ``TooManyFieldsSent`` from ``request.GET``,
    which a body's fields raise too): counted as Python's ``parse_qsl`` counts for Django,
    one more than the ``&`` in the string."""
    limit = settings.DATA_UPLOAD_MAX_NUMBER_FIELDS
    django_request = getattr(request, "_request", request)
    query = getattr(django_request, "META", {}).get("QUERY_STRING", "")
    if limit is None or query.count("&") < limit:
        return None
    name = query.split("&", limit + 1)[limit].split("=", 1)[0]
    encoding = getattr(django_request, "encoding", None) or settings.DEFAULT_CHARSET
    return unquote_plus(name, encoding=encoding, errors="replace")


#: what a field holding PostgreSQL's ``infinity`` says in a 500's ``details``
INFINITE_VALUE = "Stored as infinity, which no date or time the API shows can hold."


def _infinity_fault(exc: Exception, view: Any) -> Exception:
    """psycopg's refusal to load a date or time stored as ``infinity`` (a row written
    outside the API: no value of the API's type holds it, and Django fails on it too),
    as the :class:`ServerFault` it is, whose ``details`` name the fields the caller may read
    unmasked that show one in the rows it read (the request's row, for a URL naming one; a
    list's filtered rows), a related row's by its path (``parent.at``): the 500 said
    nothing of where, and the project has a row to repair. ``exc`` itself when
    the view cannot say (not a resource's, or no such field found)."""
    try:
        resource = view.resource
        queryset = view.get_queryset()
        if (view.lookup_url_kwarg or view.lookup_field) in (view.kwargs or {}):
            queryset = queryset.filter(**{view.lookup_field: view.get_lookup_value()})
        elif view.action == "list":
            # the rows the list read: a row its filters leave out is not the fault
            queryset = view.filter_queryset(queryset)
        # the request's own fields (a project's ``get_fields()`` may choose them)
        output = view.get_serializer_class()(context=view.get_serializer_context()).fields
        plan = view.field_access.read_plan()
        # a masked field's value is not the caller's to read either: that it holds
        # ``infinity`` is not said (the caller sees the mask, rev-fixes63)
        hidden = plan.omitted(output) | set(plan.redact)
        names = infinite_fields(
            queryset, {name: field for name, field in output.items() if name not in hidden}
        )
    except Exception:  # noqa: BLE001 - the answer is a 500 either way; said without where
        logger.warning("no field named for a stored infinity", exc_info=True)
        return exc
    if not names:
        return exc
    details = {name: [INFINITE_VALUE] for name in names}
    fault = ServerFault(f"{exc} ({resource.name}: {', '.join(names)})", details)
    fault.__cause__ = exc
    return fault.with_traceback(exc.__traceback__)


def _error_response(exc: Exception, context: dict[str, Any]) -> Response | None:
    request = context.get("request")

    if isinstance(exc, ArcError):
        if isinstance(exc, NotFound) and exc.reason and logger.isEnabledFor(logging.INFO):
            logger.info("404 for %s: %s", _path(request), log_text(exc.reason))
        return error_response(request, exc.code, exc.message, exc.status, exc.details, exc.headers)

    if isinstance(exc, Http404):
        return error_response(request, "NOT_FOUND", "Resource not found", 404)
    if isinstance(exc, TooManyFieldsSent):
        past = _first_query_parameter_past_the_limit(request)
        if past is not None:
            limit = settings.DATA_UPLOAD_MAX_NUMBER_FIELDS
            answer = InvalidQuery(past, f"more than {limit} parameters in the query string")
            return error_response(request, answer.code, answer.message, 400, answer.details)
    if isinstance(exc, (RequestDataTooBig, TooManyFieldsSent)):
        # Django's DATA_UPLOAD_MAX_MEMORY_SIZE / _NUMBER_FIELDS, hit while DRF reads the body
        return error_response(request, "PAYLOAD_TOO_LARGE", str(exc) or "Request too large", 413)
    if isinstance(exc, SuspiciousOperation):
        # What Django answers 400 to (a Host ALLOWED_HOSTS refuses, read first by whatever
        # writes an absolute URL), logged where Django logs it; the client is not told how
        # the site is configured.
        logging.getLogger(f"django.security.{type(exc).__name__}").error(str(exc))
        if isinstance(exc, DisallowedHost):
            details = {"Host": ["Not a host this site serves."]}
            return error_response(request, "VALIDATION_ERROR", "Invalid Host header", 400, details)
        return error_response(request, "BAD_REQUEST", "Bad request", 400)
    if isinstance(exc, DjangoPermissionDenied):
        answer = as_arc_error(exc)
        return error_response(request, answer.code, answer.message, answer.status)
    if isinstance(exc, DjangoValidationError):
        exc = drf_exceptions.ValidationError(as_serializer_error(exc))

    if isinstance(exc, drf_exceptions.ValidationError):
        details = flatten_validation(exc.detail)
        if not isinstance(details, dict):
            details = {api_settings.NON_FIELD_ERRORS_KEY: details}
        return error_response(request, "VALIDATION_ERROR", "Validation failed", 400, details)

    if isinstance(exc, drf_exceptions.APIException):
        answer = as_arc_error(exc)  # a throttle's Retry-After, a 401's challenge with it
        return error_response(
            request, answer.code, answer.message, answer.status, None, answer.headers
        )

    if isinstance(exc, IntegrityError):  # ProtectedError and RestrictedError are ones too
        answer = conflict_error(exc, getattr(request, "path", "?"))  # escaped there
        return error_response(request, answer.code, answer.message, answer.status)
    # Anything else is a bug or an outage: reported as Django reports an exception no view
    # handled (``response_for_exception``): ``got_request_exception`` for error reporters,
    # one ERROR with the traceback on ``django.request`` (``mail_admins``), escaped; the
    # client is told only that it failed (no traceback, no SQL in the body). Under
    # ``ATOMIC_REQUESTS`` the request's transaction is not marked for rollback: what came
    # before a write's own transaction stays, as an elevated request's audit event must
    # (decisions.md); a write's own transaction, and a keyed request's, rolled back already.
    if refused_infinity(exc):
        exc = _infinity_fault(exc, context.get("view"))
    details = exc.details if isinstance(exc, ServerFault) else None
    response = error_response(request, "INTERNAL_ERROR", "Internal server error", 500, details)
    django_request = getattr(request, "_request", request)
    if django_request is not None:
        # sent within the view (inside that transaction, where Django sends it after the
        # rollback): a receiver that fails is logged, never the answer in the envelope's
        # place; send_robust logs it itself, with its traceback, on django.dispatch
        got_request_exception.send_robust(sender=None, request=django_request)
    log_response(
        "%s: %s",
        response.reason_phrase,
        getattr(django_request, "path", "?"),
        response=response,
        request=django_request,
        exception=exc,
    )
    return response
