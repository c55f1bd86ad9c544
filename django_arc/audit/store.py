"""Writing the audit rows of a bulk write: one INSERT for the batch.

The rows of one request share everything but the object and its before/after (actor,
organization, request id, resource, action, time), so those go once as parameters.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from django.db import connections, router
from django.db.models.signals import post_save, pre_save

from ..events.event import dumps as _dumps
from .models import AuditLog

#: The columns every row of a batch shares, taken from one ``AuditLog`` built for the batch.
SHARED_FIELDS = (
    "created_at",
    "action",
    "resource",
    "organization_id",
    "actor_kind",
    "actor_user_id",
    "actor_client_id",
    "request_id",
)


#: those a batch sends once (its organization may be each row's: ``insert_many``)
_SHARED_PARAMS = tuple(name for name in SHARED_FIELDS if name != "organization_id")

_insert_sql: dict[str, str] = {}


def _insert_statement(connection: Any) -> str:
    """PostgreSQL: the shared columns as parameters, then one row per element of a JSON
    array of ``[object_id, before, after, organization_id]`` (the organization is each
    row's: an elevated bulk write across tenants names each row's tenant).

    Why not ``bulk_create``: Django sends it as ``UNNEST`` of one array parameter per
    column, and the driver quotes the ``before``/``after`` arrays element by element in
    Python (every ``"`` of their JSON escaped by a regular expression). One JSON text is one
    string parameter, quoted in C, and the server parses it. ``NULLIF(…, 'null')`` stores a
    missing ``before`` (create) or ``after`` (delete) as SQL ``NULL``, as the ORM does; the
    columns keep their types and lengths; ``ORDER BY`` the position gives the ids in the
    batch's order."""
    sql = _insert_sql.get(connection.alias)
    if sql is None:
        qn = connection.ops.quote_name
        opts = AuditLog._meta
        names = (*_SHARED_PARAMS, "object_id", "before", "after", "organization_id")
        columns = ", ".join(qn(opts.get_field(name).column) for name in names)
        shared = ", ".join("%s" for _ in _SHARED_PARAMS)
        sql = (
            f"INSERT INTO {qn(opts.db_table)} ({columns}) "
            f"SELECT {shared}, r.h->>0, NULLIF(r.h->1, 'null'::jsonb), "
            "NULLIF(r.h->2, 'null'::jsonb), r.h->>3 "
            "FROM jsonb_array_elements(%s::jsonb) WITH ORDINALITY AS r(h, n) ORDER BY r.n"
        )
        _insert_sql[connection.alias] = sql
    return sql


def insert_many(
    shared: AuditLog,
    rows: Sequence[tuple[str, dict[str, Any] | None, dict[str, Any] | None]],
    organizations: Sequence[str | None] | None = None,
) -> None:
    """Insert one ``AuditLog`` row per ``(object_id, before, after)`` of ``rows``, each
    with ``shared``'s actor, organization, request id, resource, action and time, in the
    current transaction.

    On PostgreSQL one statement whose rows travel as one JSON parameter
    (:func:`_insert_statement`); elsewhere ``bulk_create``. Neither sends ``pre_save``/
    ``post_save``: when something listens to them (a project forwarding audit rows), each
    row is saved on its own instead, as one write's row is, so a bulk write's audit reaches
    it too. The rows are not returned. ``organizations``, one per row, replaces
    ``shared``'s organization row by row (still one INSERT)."""
    if not rows:
        return
    if organizations is None:
        organizations = [shared.organization_id] * len(rows)
    db = router.db_for_write(AuditLog)
    connection = connections[db]
    if pre_save.has_listeners(AuditLog) or post_save.has_listeners(AuditLog):
        values = {name: getattr(shared, name) for name in _SHARED_PARAMS}
        for (object_id, before, after), org in zip(rows, organizations, strict=True):
            row = AuditLog(
                **values, organization_id=org, object_id=object_id, before=before, after=after
            )
            row.save(force_insert=True, using=db)
        return
    if connection.vendor != "postgresql":
        values = {name: getattr(shared, name) for name in _SHARED_PARAMS}
        AuditLog.objects.using(db).bulk_create(
            AuditLog(**values, organization_id=org, object_id=object_id, before=before, after=after)
            for (object_id, before, after), org in zip(rows, organizations, strict=True)
        )
        return
    opts = AuditLog._meta
    params = [
        opts.get_field(name).get_db_prep_save(getattr(shared, name), connection)
        for name in _SHARED_PARAMS
    ]
    params.append(_dumps([[*row, org] for row, org in zip(rows, organizations, strict=True)]))
    with connection.cursor() as cursor:
        cursor.execute(_insert_statement(connection), params)
