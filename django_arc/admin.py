"""Admin registrations for django-arc's models."""


# --- ServiceClient ------------------------------------------------------------------------
# The raw key is generated in save_model and rendered straight into the add response (never
# put in the session or a message cookie, never shown again).

from django import forms as _sc_forms  # noqa: E402
from django.contrib import admin as _sc_admin  # noqa: E402
from django.contrib import messages as _sc_messages  # noqa: E402
from django.template.response import TemplateResponse as _SCTemplateResponse  # noqa: E402

from .admin_input import RefuseOddInputMixin as _RefuseOddInputMixin  # noqa: E402
from .clients import ServiceClient as _ServiceClient  # noqa: E402


class ServiceClientForm(_sc_forms.ModelForm):
    scopes = _sc_forms.CharField(
        required=False, help_text="Comma-separated scope names, e.g. orders:read, sync."
    )

    class Meta:
        model = _ServiceClient
        fields = ["name", "organization_id", "scopes", "active"]

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        if self.instance.pk and not self.is_bound:
            self.initial["scopes"] = ", ".join(self.instance.scopes or [])

    def clean_organization_id(self) -> str:
        """The organization must exist, as ``arc_create_client`` requires: a key for a missing
        one can read nothing, or waits for whatever organization is created under that id
        later. Checked when the field is set or changed, so a client whose organization was
        deleted since can still be edited (deactivated, renamed)."""
        from .management.commands.arc_create_client import _exists, organization_models

        org = self.cleaned_data.get("organization_id") or ""
        if self.instance.pk and "organization_id" not in self.changed_data:
            return org
        for model in organization_models():
            if not _exists(model, org):
                raise _sc_forms.ValidationError(
                    f"Organization {org!r} does not exist ({model._meta.label}); create it first."
                )
        return org

    def clean_scopes(self) -> list[str]:
        value = self.cleaned_data.get("scopes") or ""
        return [part.strip() for part in value.split(",") if part.strip()]


@_sc_admin.register(_ServiceClient)
class ServiceClientAdmin(_RefuseOddInputMixin, _sc_admin.ModelAdmin):
    form = ServiceClientForm
    list_display = [
        "name",
        "client_id",
        "organization_id",
        "key_prefix_display",
        "active",
        "last_used_at",
        "created_at",
    ]
    list_filter = ["active"]
    search_fields = ["name", "client_id", "organization_id", "key_prefix"]
    readonly_fields = ["client_id", "key_prefix_display", "created_at", "last_used_at"]
    actions = ["deactivate"]

    @_sc_admin.display(description="key prefix", ordering="key_prefix")
    def key_prefix_display(self, obj: _ServiceClient) -> str:
        return f"{obj.key_prefix}…" if obj.key_prefix else "-"

    def get_fields(self, request, obj=None):
        fields = ["name", "organization_id", "scopes", "active"]
        return fields if obj is None else [*fields, *self.readonly_fields]

    def get_readonly_fields(self, request, obj=None):
        return [] if obj is None else self.readonly_fields

    def save_model(self, request, obj: _ServiceClient, form, change: bool) -> None:
        if not change:
            obj._arc_raw_key = obj.set_new_key()
        super().save_model(request, obj, form, change)

    def response_add(self, request, obj: _ServiceClient, post_url_continue=None):
        raw_key = getattr(obj, "_arc_raw_key", None)
        if raw_key is None:  # pragma: no cover - save_model always sets it on add
            return super().response_add(request, obj, post_url_continue)
        context = {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "client": obj,
            "raw_key": raw_key,
            "title": "Service client created",
        }
        response = _SCTemplateResponse(
            request, "admin/django_arc/serviceclient/key_created.html", context
        )
        response["Cache-Control"] = "no-store"
        return response

    @_sc_admin.action(description="Deactivate selected service clients", permissions=["change"])
    def deactivate(self, request, queryset) -> None:
        """Deactivate, and record each client deactivated in its admin history (an
        ``UPDATE`` alone leaves no trace of who revoked a key)."""
        clients = list(queryset.filter(active=True))
        count = _ServiceClient.objects.filter(
            pk__in=[client.pk for client in clients], active=True
        ).update(active=False)
        for client in clients:
            self.log_change(request, client, "Deactivated (action).")
        self.message_user(request, f"Deactivated {count} service client(s).", _sc_messages.SUCCESS)


# --- OutboxEvent ---------------------------------------------------------------------------
# Operators' view of the outbox: what is pending, what died and why. Rows are evidence, so
# the change page is read-only; the only writes are "requeue" (dead -> pending) and purging
# delivered rows past retention. Pending rows can never be deleted here: that would silently
# drop an event the application already committed to.

import json as _ob_json  # noqa: E402
from datetime import timedelta as _ob_timedelta  # noqa: E402

from django.contrib import admin as _ob_admin  # noqa: E402
from django.contrib import messages as _ob_messages  # noqa: E402
from django.core.exceptions import PermissionDenied as _ObPermissionDenied  # noqa: E402
from django.core.paginator import Paginator as _ObPaginator  # noqa: E402
from django.core.serializers.json import DjangoJSONEncoder as _ObJSONEncoder  # noqa: E402
from django.db import connections as _ob_connections  # noqa: E402
from django.http import HttpResponseRedirect as _ObRedirect  # noqa: E402
from django.template.response import TemplateResponse as _ObTemplateResponse  # noqa: E402
from django.urls import path as _ob_path  # noqa: E402
from django.urls import reverse as _ob_reverse  # noqa: E402
from django.utils.html import format_html as _ob_format_html  # noqa: E402
from django.utils.text import Truncator as _ObTruncator  # noqa: E402

from .admin_input import is_primary_key as _is_primary_key  # noqa: E402
from .audit.admin import EstimatedCountPaginator as _ObEstimatedCountPaginator  # noqa: E402
from .clock import now_on as _ob_now_on  # noqa: E402
from .outbox.models import OutboxEvent as _OutboxEvent  # noqa: E402
from .outbox.models import OutboxStatus as _OutboxStatus  # noqa: E402


def _ob_pretty_json(value) -> str:
    return _ob_format_html(
        '<pre class="arc-json" style="white-space: pre-wrap; margin: 0">{}</pre>',
        _ob_json.dumps(value, indent=2, sort_keys=True, cls=_ObJSONEncoder, ensure_ascii=False),
    )


#: Rows one requeue transaction locks, requeues and logs; "Requeue all" of a large dead-letter
#: queue runs several, each short, instead of one UPDATE holding every row's lock.
REQUEUE_CHUNK = 500


def _ob_requeue(request, queryset) -> int:
    """Requeue the dead rows of ``queryset`` and record each one in its admin history (who
    put it back in the queue, and when), as Django's own bulk delete records each row.

    Chunks of ``REQUEUE_CHUNK`` rows in primary key order: each is locked, requeued and logged
    in one transaction, so a row is logged exactly when it was requeued, and no statement
    names more ids than a backend takes."""
    from django.contrib.admin.models import CHANGE, LogEntry
    from django.contrib.contenttypes.models import ContentType
    from django.db import transaction

    from .outbox import get_outbox

    outbox = get_outbox()
    dead = _OutboxEvent.objects.using(outbox.db).filter(
        status=_OutboxStatus.DEAD, pk__in=queryset.values("pk")
    )
    content_type = ContentType.objects.get_for_model(_OutboxEvent)
    requeued, last = 0, None
    while True:
        with transaction.atomic(using=outbox.db):
            chunk = dead if last is None else dead.filter(pk__gt=last)
            rows = list(
                chunk.order_by("pk")
                .select_for_update()
                .values_list("pk", "type", "event_id")[:REQUEUE_CHUNK]
            )
            if not rows:
                return requeued
            requeued += outbox.requeue([pk for pk, _type, _event_id in rows])
            LogEntry.objects.bulk_create(
                [
                    LogEntry(
                        user_id=request.user.pk,
                        content_type=content_type,
                        object_id=str(pk),
                        object_repr=f"{type_} {event_id}"[:200],
                        action_flag=CHANGE,
                        change_message="Requeued (dead -> pending).",
                    )
                    for pk, type_, event_id in rows
                ]
            )
        last = rows[-1][0]


#: How many of the newest rows the "type" filter takes its choices from.
TYPE_FILTER_RECENT_ROWS = 1000


class OutboxTypeFilter(_ob_admin.SimpleListFilter):
    """The types of the newest ``TYPE_FILTER_RECENT_ROWS`` rows (and the one asked for), not
    every type in the table: Django's own filter for a column runs ``SELECT DISTINCT type``
    over the whole outbox, a full scan on every page load. ``?type=`` filters by any type."""

    title = "type"
    parameter_name = "type"

    def lookups(self, request, model_admin) -> list[tuple[str, str]]:
        recent = model_admin.get_queryset(request).order_by("-id").values_list("type", flat=True)
        types = set(recent[:TYPE_FILTER_RECENT_ROWS])
        if self.value():
            types.add(self.value())
        return [(name, name) for name in sorted(types)]

    def queryset(self, request, queryset):
        return queryset.filter(type=self.value()) if self.value() else queryset


#: Batches one "Relay now" may run: a request must not relay an unbounded backlog.
RELAY_NOW_MAX_BATCHES = 10


def _ob_relay_now() -> dict:
    from .outbox import run_relay

    return run_relay(max_batches=RELAY_NOW_MAX_BATCHES, until_drained=True).to_dict()


@_ob_admin.register(_OutboxEvent)
class OutboxEventAdmin(_RefuseOddInputMixin, _ob_admin.ModelAdmin):
    """Changelist filterable by status/type/date, read-only detail, requeue and purge actions,
    and a dead-letter page (``dead-letters/``) listing dead rows with their full last error."""

    change_list_template = "admin/django_arc/outboxevent/change_list.html"
    list_display = [
        "type",
        "status",
        "attempts",
        "last_error_excerpt",
        "visible_at",
        "event_id",
        "created_at",
    ]
    list_display_links = ["type"]
    list_filter = ["status", OutboxTypeFilter, "created_at"]
    search_fields = ["=event_id", "type"]
    ordering = ["-id"]
    list_per_page = 50
    # COUNT(*) over a large outbox is slow: no full count, and the unfiltered list's
    # paginator takes PostgreSQL's row estimate instead of counting (as the audit log's does).
    show_full_result_count = False
    paginator = _ObEstimatedCountPaginator
    actions = ["requeue_selected", "purge_delivered"]
    fields = [
        "event_id",
        "type",
        "status",
        "attempts",
        "visible_at",
        "created_at",
        "delivered_at",
        "lease_owner",
        "lease_expires_at",
        "partition_key",
        "dedupe_key",
        "last_error_full",
        "payload_pretty",
        "meta_pretty",
    ]
    readonly_fields = fields

    # -- columns / detail fields ---------------------------------------------------------------
    @_ob_admin.display(description="last error")
    def last_error_excerpt(self, obj: _OutboxEvent) -> str:
        return _ObTruncator(obj.last_error or "").chars(80) or "-"

    @_ob_admin.display(description="last error")
    def last_error_full(self, obj: _OutboxEvent) -> str:
        if not obj.last_error:
            return "-"
        return _ob_format_html(
            '<pre style="white-space: pre-wrap; margin: 0">{}</pre>', obj.last_error
        )

    @_ob_admin.display(description="payload")
    def payload_pretty(self, obj: _OutboxEvent) -> str:
        return _ob_pretty_json(obj.payload)

    @_ob_admin.display(description="meta")
    def meta_pretty(self, obj: _OutboxEvent) -> str:
        return _ob_pretty_json(obj.meta)

    def get_search_results(self, request, queryset, search_term):
        """An event id first, through its unique index (as pasted or lower-cased); else
        Django's search, the type's substring. Django's search alone compares
        ``UPPER(event_id)``, which the index does not serve, ORed with ``LIKE`` on the type:
        finding one event by its id read the whole outbox, twice (count and page)."""
        term = search_term.strip()
        if term:
            by_id = queryset.filter(event_id__in=sorted({term, term.lower()}))
            if by_id.exists():
                return by_id, False
        return super().get_search_results(request, queryset, search_term)

    # -- permissions ---------------------------------------------------------------------------
    def has_add_permission(self, request, obj=None) -> bool:
        return False  # events come from writes, never from a form

    def has_change_permission(self, request, obj=None) -> bool:
        if obj is not None:
            return False  # detail page is read-only
        return super().has_change_permission(request)

    def has_delete_permission(self, request, obj=None) -> bool:
        if obj is not None and obj.status == _OutboxStatus.PENDING:
            return False
        return super().has_delete_permission(request, obj)

    def get_actions(self, request):
        actions = super().get_actions(request)
        # Bulk delete would happily drop pending events; "purge" is the safe bulk removal.
        actions.pop("delete_selected", None)
        return actions

    # -- actions -------------------------------------------------------------------------------
    @_ob_admin.action(description="Requeue selected", permissions=["change"])
    def requeue_selected(self, request, queryset) -> None:
        selected = queryset.count()
        requeued = _ob_requeue(request, queryset)
        message = f"Requeued {requeued} dead event(s)."
        if selected > requeued:
            message += (
                f" {selected - requeued} selected event(s) were not dead and were left alone."
            )
        self.message_user(request, message, _ob_messages.SUCCESS)

    @_ob_admin.action(description="Purge delivered older than retention", permissions=["delete"])
    def purge_delivered(self, request, queryset) -> None:
        from .settings import arc_settings

        days = arc_settings.OUTBOX.get("DELIVERED_RETENTION_DAYS", 7)
        # counted back from the clock that wrote delivered_at (the database's on
        # PostgreSQL), as the relay's purge() counts: not this admin server's
        cutoff = _ob_now_on(_ob_connections[queryset.db]) - _ob_timedelta(days=float(days))
        deleted, _ = queryset.filter(
            status=_OutboxStatus.DELIVERED, delivered_at__lt=cutoff
        ).delete()
        self.message_user(
            request,
            f"Purged {deleted} delivered event(s) older than {days} day(s); pending, dead and "
            "recent rows were kept.",
            _ob_messages.SUCCESS,
        )

    # -- dead-letter page ----------------------------------------------------------------------
    def get_urls(self):
        opts = self.model._meta
        name = f"{opts.app_label}_{opts.model_name}_dead_letters"
        relay = f"{opts.app_label}_{opts.model_name}_relay_now"
        return [
            _ob_path(
                "dead-letters/", self.admin_site.admin_view(self.dead_letters_view), name=name
            ),
            _ob_path("relay-now/", self.admin_site.admin_view(self.relay_now_view), name=relay),
            *super().get_urls(),
        ]

    def changelist_view(self, request, extra_context=None):
        extra_context = {**(extra_context or {}), "can_relay": self.has_change_permission(request)}
        return super().changelist_view(request, extra_context)

    def relay_now_view(self, request):
        """POST: relay pending events now with :func:`django_arc.outbox.run_relay` (the loop
        of ``arc_relay`` and the Celery task), at most ``RELAY_NOW_MAX_BATCHES`` batches, then
        back to the changelist with the counts."""
        if request.method != "POST":
            return _ObRedirect(self._ob_url("changelist"))
        if not self.has_change_permission(request):
            raise _ObPermissionDenied
        totals = _ob_relay_now()
        level = _ob_messages.SUCCESS
        if totals["publish_failed"] or totals["errors"]:
            level = _ob_messages.WARNING
        self.message_user(
            request,
            f"Relayed {totals['relayed']} event(s) in {totals['batches']} batch(es); "
            f"{totals['publish_failed']} failed to publish ({totals['dead_lettered']} went "
            f"dead), {totals['errors']} batch(es) hit a database error.",
            level,
        )
        return _ObRedirect(self._ob_url("changelist"))

    def _ob_url(self, name: str) -> str:
        opts = self.model._meta
        return _ob_reverse(f"{self.admin_site.name}:{opts.app_label}_{opts.model_name}_{name}")

    def dead_letters_view(self, request):
        """Dead rows, oldest first, with their full ``last_error``; POST requeues the ticked
        ones (or all of them with ``requeue_all``)."""
        if not self.has_view_permission(request):
            raise _ObPermissionDenied
        dead = _OutboxEvent.objects.filter(status=_OutboxStatus.DEAD).order_by("id")
        url = _ob_reverse(
            f"{self.admin_site.name}:{self.model._meta.app_label}_"
            f"{self.model._meta.model_name}_dead_letters"
        )
        if request.method == "POST":
            if not self.has_change_permission(request):
                raise _ObPermissionDenied
            if request.POST.get("requeue_all"):
                target = dead
            else:
                # ids that are not primary keys (text, past the column's range) select
                # nothing, as a stale page's vanished rows do
                ids = [v for v in request.POST.getlist("ids") if _is_primary_key(_OutboxEvent, v)]
                target = dead.filter(pk__in=[int(v) for v in ids])
            requeued = _ob_requeue(request, target)
            if requeued:
                self.message_user(
                    request, f"Requeued {requeued} dead event(s).", _ob_messages.SUCCESS
                )
            else:
                self.message_user(
                    request, "Nothing was requeued: no dead event selected.", _ob_messages.WARNING
                )
            return _ObRedirect(url)
        page = _ObPaginator(dead, 100).get_page(request.GET.get("p"))
        context = {
            **self.admin_site.each_context(request),
            "opts": self.model._meta,
            "title": "Dead letters",
            "subtitle": None,
            "page": page,
            "can_requeue": self.has_change_permission(request),
            "changelist_url": _ob_reverse(
                f"{self.admin_site.name}:{self.model._meta.app_label}_"
                f"{self.model._meta.model_name}_changelist"
            ),
        }
        return _ObTemplateResponse(
            request, "admin/django_arc/outboxevent/dead_letters.html", context
        )


# --- AuditLog: registered by its own module ------------------------------------------------
from .audit import admin as _audit_admin  # noqa: E402, F401
