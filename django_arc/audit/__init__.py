"""Audit entries: ``Audited()`` records every write of a resource, :func:`custom` records a
domain event of your own (``audit.custom(request, "invoice.sent", object_id=...)``).

Both write an :class:`~django_arc.audit.models.AuditLog` row in the current transaction: if
the write (or your transaction) rolls back, so does its entry.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from ..exceptions import get_request_id
from ..scope import get_scope

__all__ = ["custom", "entry", "record_many", "changed", "MAX_OBJECT_ID_BYTES"]

#: The longest object id, in UTF-8 bytes, an audit row takes. The column is text, but the id
#: is also in the ``(resource, object_id, id)`` index, and PostgreSQL caps a btree entry at
#: 2,704 bytes (a 100-character resource may take 400 of them): a longer id that does not
#: compress was refused there, aborting the caller's transaction, and stored by SQLite.
MAX_OBJECT_ID_BYTES = 2000


def _object_id(value: Any) -> str:
    """``value`` as the text stored in ``object_id``; ``ValueError`` past
    :data:`MAX_OBJECT_ID_BYTES`, on every database, before any SQL."""
    text = "" if value is None else str(value)
    size = len(text.encode("utf-8", "surrogatepass"))
    if size > MAX_OBJECT_ID_BYTES:
        raise ValueError(
            f"audit object_id {text[:40]!r}… is {size} bytes; at most {MAX_OBJECT_ID_BYTES}"
        )
    return text


def entry(
    request: Any,
    action: str,
    *,
    resource: str = "",
    object_id: Any = "",
    before: dict[str, Any] | None = None,
    after: dict[str, Any] | None = None,
) -> Any:
    """An unsaved ``AuditLog`` row with the request's actor, organization and request id.

    ``ValueError`` when ``action`` or ``resource`` is longer than its column, or
    ``object_id`` than :data:`MAX_OBJECT_ID_BYTES`, on every database: SQLite would store it
    and PostgreSQL refuse it, aborting the caller's transaction (an audited resource's
    names are checked at start-up by the preset auditing it, arc.E011)."""
    from .models import AuditLog  # a model: importable only once apps are ready

    for field, value in (("action", action), ("resource", resource)):
        limit = AuditLog._meta.get_field(field).max_length
        if len(value) > limit:
            raise ValueError(
                f"audit {field} {value[:40]!r}… is {len(value)} characters; at most {limit}"
            )
    scope = get_scope(request)
    return AuditLog(
        action=action,
        resource=resource,
        object_id=_object_id(object_id),
        organization_id=scope.organization_id,
        actor_kind=scope.kind,
        actor_user_id=None if scope.user_id is None else str(scope.user_id),
        actor_client_id=scope.client_id,
        request_id=get_request_id(request),
        before=before,
        after=after,
    )


def custom(
    request: Any,
    action: str,
    *,
    resource: str = "",
    object_id: Any = "",
    before: dict[str, Any] | None = None,
    after: dict[str, Any] | None = None,
) -> Any:
    """Record a domain entry (``"invoice.sent"``, ``"export.downloaded"``) for the caller of
    ``request``, in the current transaction. Returns the saved row."""
    row = entry(request, action, resource=resource, object_id=object_id, before=before, after=after)
    row.save(force_insert=True)
    return row


def record_many(
    request: Any,
    action: str,
    rows: Iterable[tuple[Any, dict[str, Any] | None, dict[str, Any] | None]],
    *,
    resource: str = "",
) -> None:
    """Record one entry per ``(object_id, before, after)`` of ``rows`` — the rows of one
    bulk write — for the caller of ``request``, in the current transaction, with one
    INSERT. The entries are those :func:`entry` builds one by one (same actor,
    organization, request id), with one time for the batch."""
    from .store import insert_many  # a model: importable only once apps are ready

    # every id is checked before the INSERT: a refused one writes none of the batch
    checked = [(_object_id(object_id), b, a) for object_id, b, a in rows]
    insert_many(entry(request, action, resource=resource), checked)


def changed(
    before: dict[str, Any] | None, after: dict[str, Any] | None
) -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
    """Only what changed: the whole row on create (``before`` None) and delete (``after``
    None), the differing fields otherwise."""
    if before is None or after is None:
        return before, after
    keys = [k for k in after.keys() | before.keys() if before.get(k) != after.get(k)]
    return {k: before.get(k) for k in keys}, {k: after.get(k) for k in keys}
