"""Field permissions: ``field_permissions = {"cost": F.visible_to("admin"), ...}``.

Read rules shape every response (list, get, write responses, ``select``); write rules are
enforced on the request body *before* validation, so a forbidden write is refused whole
(403 ``FIELD_WRITE_DENIED``) or stripped, never half-applied.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from .exceptions import ArcError

__all__ = [
    "FieldPermission",
    "FieldRules",
    "FieldAccess",
    "ReadPlan",
    "hidden",
    "visible_to",
    "writable_by",
    "read_only",
    "redact_for",
]


def _holds(scope: Any, roles: frozenset[str]) -> bool:
    """Role test for field rules. Inside an organization the org roles decide (a member's
    global Django groups do not widen what it sees of a tenant's rows, and checking them would
    cost a query per request); service clients are judged by their scopes; callers without an
    org context by their user roles."""
    if scope.kind == "member":
        return bool(roles & frozenset(scope.org_roles or ()))
    if scope.kind == "service":
        return bool(roles & frozenset(scope.scopes or ()))
    return any(role in roles for role in (scope.user_roles or ()))


@dataclass(frozen=True)
class FieldPermission:
    """What a caller may do with one field.

    ``read_roles``/``write_roles`` of ``None`` mean everyone; an empty set means no one.
    Elevated callers (platform admins) pass every role test but never see ``hidden`` fields.
    """

    kind: str
    read_roles: frozenset[str] | None = None
    write_roles: frozenset[str] | None = None
    redact_roles: frozenset[str] = field(default_factory=frozenset)
    mask: Any = "***"

    @property
    def is_hidden(self) -> bool:
        return self.kind == "hidden"

    def can_read(self, scope: Any) -> bool:
        if self.is_hidden:
            return False
        if self.read_roles is None or scope.kind == "elevated":
            return True
        return _holds(scope, self.read_roles)

    def can_write(self, scope: Any) -> bool:
        if self.is_hidden or self.write_roles == frozenset():
            return False
        if self.write_roles is None or scope.kind == "elevated":
            return True
        return _holds(scope, self.write_roles)

    def redacts_for(self, scope: Any) -> bool:
        if not self.redact_roles or scope.kind == "elevated":
            return False
        return _holds(scope, self.redact_roles)


def hidden() -> FieldPermission:
    """Never read or written through the API; also refused in filter/sort/select/search as if
    the field did not exist, so it cannot be probed."""
    return FieldPermission("hidden", read_roles=frozenset(), write_roles=frozenset())


def visible_to(*roles: str) -> FieldPermission:
    """Omitted from output for callers without one of ``roles``. Those callers may not write
    it either: a field you cannot see is not yours to set."""
    r = frozenset(roles)
    return FieldPermission("visible_to", read_roles=r, write_roles=r)


def writable_by(*roles: str) -> FieldPermission:
    """Readable by everyone who can read the row; writable only with one of ``roles``."""
    return FieldPermission("writable_by", write_roles=frozenset(roles))


def read_only() -> FieldPermission:
    """Readable; never writable through the API (like ``read_only_fields``)."""
    return FieldPermission("read_only", write_roles=frozenset())


def redact_for(*roles: str, mask: Any = "***") -> FieldPermission:
    """Callers holding one of ``roles`` see ``mask`` instead of the value."""
    return FieldPermission("redact_for", redact_roles=frozenset(roles), mask=mask)


# -- the one place that decides what a caller may do with each field ----------------------------


class ReadPlan:
    """How one caller sees rows: fields dropped (unreadable or not selected) and masked."""

    __slots__ = ("drop", "redact", "keep")

    def __init__(
        self, drop: frozenset[str], redact: dict[str, Any], keep: frozenset[str] | None = None
    ) -> None:
        self.drop = drop
        self.redact = redact
        self.keep = keep

    def omitted(self, output_fields: Any) -> frozenset[str]:
        """Output fields not to render at all (dropped, or not selected)."""
        if self.keep is None:
            return self.drop
        return frozenset(f for f in output_fields if f in self.drop or f not in self.keep)

    def mask(self, doc: dict[str, Any]) -> dict[str, Any]:
        return {key: self.redact.get(key, value) for key, value in doc.items()}

    def shape(self, doc: dict[str, Any]) -> dict[str, Any]:
        """``doc`` without what this caller may not see, masked where it sees a mask."""
        if not (self.drop or self.redact or self.keep is not None):
            return doc
        out = {}
        for key, value in doc.items():
            if key in self.drop or (self.keep is not None and key not in self.keep):
                continue
            out[key] = self.redact.get(key, value)
        return out


class FieldRules:
    """A resource's field rules, compiled once: what holds for every caller.

    ``hidden`` fields do not exist for the API; ``never_writable`` ones (``read_only_fields``,
    the primary key, preset-managed fields, ``read_only()``) are read-only in the serializer
    and refused (or stripped) in a body. :meth:`for_scope` adds what depends on the caller.
    """

    def __init__(
        self,
        rules: dict[str, FieldPermission],
        read_only: set[str],
        managed: frozenset[str],
        write_only: frozenset[str] = frozenset(),
        renamed: dict[str, str] | None = None,
        written: dict[str, str] | None = None,
        named_elsewhere: frozenset[str] = frozenset(),
    ) -> None:
        self.rules = {n: r for n, r in rules.items() if isinstance(r, FieldPermission)}
        self.hidden = frozenset(n for n, r in self.rules.items() if r.is_hidden)
        #: a serializer's ``write_only`` fields and the columns only they read: no caller
        #: reads them, so none may select, filter, sort or search on them either
        self.write_only = write_only
        #: a serializer's fields rendering a column under another name (``unit_cost =
        #: DecimalField(source="cost")``): ``{name: column}``. The query string names the
        #: column, so a rule on the field also rules the column (:attr:`FieldAccess.restricted`)
        self.renamed = dict(renamed or {})
        self.managed = managed
        #: a serializer's fields writing a preset-managed column under another name
        #: (``assignee = PrimaryKeyRelatedField(source="owner")``): ``{name: column}``.
        #: Judged as that column's own field (SPEC §4: never writable from a body), a value
        #: the preset accepts as harmless (the caller's own tenant) dropped: a preset forcing
        #: its column on create only (an owner-scoping one) let an update hand the row to any user
        self.managed_aliases = {
            name: column for name, column in (written or {}).items() if column in managed
        }
        self.never_writable = frozenset(
            set(read_only)
            | managed
            | self.managed_aliases.keys()
            | {n for n, r in self.rules.items() if r.write_roles == frozenset()}
        )
        # rules that depend on the caller; the rest are decided above
        self._per_caller = [(n, r) for n, r in self.rules.items() if not r.is_hidden]
        #: for a field writing a model column, the other ruled fields of that column: its
        #: own-named field and every writable field with ``source=`` that column
        #: (``written``: ``{name: column}``). A write through any of them is a write of the
        #: column, judged by each of their write rules (:meth:`FieldAccess.write_verdict`)
        self.write_peers = self._write_peers(dict(written or {}), named_elsewhere)

    def _write_peers(
        self, written: dict[str, str], named_elsewhere: frozenset[str] = frozenset()
    ) -> dict[str, frozenset[str]]:
        """``{name: the other ruled fields writing or named like its column}``: a
        ``serializer_class`` writing ``secret_notes`` (``hidden()``) or ``cost``
        (``visible_to("admin")``) through ``notes = CharField(source="secret_notes")`` or
        ``cost_eur = DecimalField(source="cost")`` let any caller write what the rule on
        the column's own field kept from it, since a body key was judged by its own name
        only. Unlike a read (a field under another name may render a view of a column), a
        write through an alias stores the column's value.

        A field named like a column but writing another (``cost = ...(source="price")``
        beside ``unit_cost = ...(source="cost")``) is a peer of the column it writes only,
        as :meth:`restricted_columns` reads it: counted with the column it is named like
        too, its peers there replaced those of the column it writes (an editor wrote a
        ``price`` ruled ``writable_by("admin")`` through ``cost``, 200), and its rule
        refused ``unit_cost`` to callers the rule on ``price``'s writer meant. So is one
        rendering no column at all (``named_elsewhere``: a ``SerializerMethodField``, a
        dotted ``source``): read-only, it writes nothing, and its rule is on its own value."""
        groups: dict[str, set[str]] = {}
        for name, column in written.items():
            # the column's own name is its field only when that field writes no other one,
            # nor renders another (a read-only ``cost = ...(source="price")``: its
            # ``visible_to`` refused a write of the ``cost`` column through ``unit_cost``)
            own = (
                column not in written
                and column not in named_elsewhere
                and self.renamed.get(column, column) == column
            )
            groups.setdefault(column, {column} if own else set()).add(name)
        peers: dict[str, set[str]] = {}
        for members in groups.values():
            ruled = {name for name in members if name in self.rules}
            for name in members:
                if others := ruled - {name}:
                    peers.setdefault(name, set()).update(others)
        return {name: frozenset(others) for name, others in peers.items()}

    def restricted_columns(self, names: Iterable[str]) -> frozenset[str]:
        """The query string's names (model columns) to refuse a caller who may not read the
        fields ``names`` (or sees them masked): those names, and the columns such a field
        renders under another name (:attr:`renamed`), less every column a field outside
        ``names`` renders: its reader knows the value, so the query string may name it.
        Field and column names differ only under :attr:`renamed` (``cost = ...(source=
        "price")`` beside ``unit_cost = ...(source="cost")``): a caller from whom ``cost``
        is hidden is refused ``price``, not the ``cost`` column it reads as ``unit_cost``.
        A name no readable field renders stays refused, whatever it renders (a method
        field named like a column): the set fails closed. So does a field's own column
        (``sku``, hidden) beside a readable field rendering it under another name
        (``sku_tail = ...(source="sku")``): arc cannot tell a field's view of a column (its
        last characters, a hash) from its value, and the field's rule is on that column."""
        names = set(names)
        if not self.renamed:
            return frozenset(names)
        renamed = self.renamed
        # a name renders its own column (``renamed`` maps it to itself) or, if not renamed,
        # is kept as it is; one rendering another column (or none) is dropped where a
        # readable field renders the column of its name: that column is no secret
        known = {column for name, column in renamed.items() if name not in names}
        own = {name for name in names if renamed.get(name) == name}
        kept = names - (known - own)
        # a restricted field's column under another name is opened only by a readable field
        # named like that column and rendering it (``cost`` beside ``unit_cost``), not by a
        # third name (``cost_tail = ...(source="cost")``), which may render a view of it
        columns = {renamed[name] for name in names if name in renamed and renamed[name] != name}
        read_as_itself = {c for n, c in renamed.items() if n == c and n not in names}
        return frozenset(kept | (columns - read_as_itself))

    def for_scope(self, scope: Any) -> FieldAccess:
        drop = set(self.hidden) | self.write_only
        redact: dict[str, Any] = {}
        for name, rule in self._per_caller:
            if not rule.can_read(scope):
                drop.add(name)
            elif rule.redacts_for(scope):
                redact[name] = rule.mask
        return FieldAccess(self, scope, frozenset(drop), redact)


class FieldAccess:
    """What one caller may read, see masked and write: every per-caller field decision
    (responses, ``select``, the query string, the write guard) asks this object."""

    __slots__ = ("rules", "scope", "unreadable", "redacted")

    def __init__(
        self, rules: FieldRules, scope: Any, unreadable: frozenset[str], redacted: dict[str, Any]
    ) -> None:
        self.rules = rules
        self.scope = scope
        self.unreadable = unreadable
        self.redacted = redacted

    @property
    def restricted(self) -> frozenset[str]:
        """Fields the query string may not filter, sort or search on: a caller must not
        learn through it what it cannot read (or only sees masked)."""
        return self.rules.restricted_columns(self.unreadable | self.redacted.keys())

    def read_plan(self, select: set[str] | None = None, always: set[str] = frozenset()) -> ReadPlan:
        keep = None if select is None else frozenset(select | always)
        return ReadPlan(self.unreadable, self.redacted, keep)

    def write_verdict(self, name: str) -> str:
        """``"ignore"`` (hidden: as if it did not exist), ``"managed"`` (a preset sets it),
        ``"deny"`` or ``"allow"``."""
        rules = self.rules
        if name in rules.hidden:
            return "ignore"
        if name in rules.managed or name in rules.managed_aliases:
            return "managed"
        if name in rules.never_writable:
            return "deny"
        rule = rules.rules.get(name)
        if rule is not None and not rule.can_write(self.scope):
            return "deny"
        # a field writing a column another field's rule keeps from this caller (an alias
        # with ``source=`` it, or the column's own field beside a ruled alias)
        for peer in rules.write_peers.get(name, ()):
            if not rules.rules[peer].can_write(self.scope):
                return "deny"
        return "allow"

    def guard(
        self,
        data: dict[str, Any],
        policy: str,
        harmless: Any = None,
        refused: list[str] | None = None,
    ) -> dict[str, Any]:
        """``data`` with every key this caller may not write refused (403
        ``FIELD_WRITE_DENIED`` naming them all) or, under ``policy == "strip"``, dropped.

        ``harmless(name, value)`` tells whether a body value of a preset-managed field may
        be dropped silently (the caller's own tenant) instead of refused. ``refused`` names
        the body's nested keys already judged and left out (``meta.owner``): the one 403
        lists them with the top-level keys, as the spec's "all such fields" asks, rather
        than the caller learning of them only once the first refusal is fixed."""
        denied: list[str] = []
        for key in list(data):
            column = self.rules.managed_aliases.get(key, key)
            kept = self.body_verdict(key, column, data[key], harmless)
            if kept is False:
                data.pop(key)
            elif kept is None:
                denied.append(key)
        if denied or refused:
            if policy != "strip":
                raise write_denied([*denied, *(refused or ())])
            for key in denied:
                data.pop(key, None)
        return data

    def body_verdict(self, name: str, column: str, value: Any, harmless: Any) -> bool | None:
        """What becomes of a body value written through ``name`` (a field, or the column a
        nested ``source="*"`` key writes) to ``column``: ``True`` written, ``False`` dropped
        silently (a field the caller is told nothing of, or a preset-managed column's value
        ``harmless(column, value)`` accepts, the caller's own tenant), ``None`` refused.
        One judgement for a body's top-level keys (:meth:`guard`) and its nested ones."""
        verdict = self.write_verdict(name)
        if verdict == "allow":
            return True
        if verdict == "ignore" or (
            verdict == "managed" and harmless is not None and harmless(column, value)
        ):
            return False
        return None


def write_denied(denied: list[str]) -> ArcError:
    """The 403 refusing a body's keys ``denied``, every one named, in order."""
    denied = sorted(denied)
    return ArcError(
        "FIELD_WRITE_DENIED",
        f"Not permitted to write fields: {', '.join(denied)}",
        403,
        {"fields": denied},
    )
