"""The outbox in the Django admin: operators' view of what is pending, what died and why.

Rows are evidence, so the change page is read-only; the only writes are "requeue" (dead ->
pending), "relay now" and purging delivered rows past retention. Pending rows can never be
deleted here: that would silently drop an event the application already committed to.
"""

from __future__ import annotations

import json
import logging

from django.contrib import admin, messages
from django.contrib.admin.models import CHANGE, DELETION, LogEntry
from django.contrib.contenttypes.models import ContentType
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.core.serializers.json import DjangoJSONEncoder
from django.db import connections, transaction
from django.http import HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html
from django.utils.text import Truncator

from ..admin_input import RefuseOddInputMixin, id_spellings, is_primary_key
from ..audit.admin import EstimatedCountPaginator
from ..logs import log_text
from ..settings import arc_settings
from . import OutboxSettingError, get_outbox, run_relay
from .models import OutboxEvent, OutboxStatus
from .relay import EventOutbox, purge_delivered, retention_age


def _pretty_json(value) -> str:
    return format_html(
        '<pre class="arc-json" style="white-space: pre-wrap; margin: 0">{}</pre>',
        json.dumps(value, indent=2, sort_keys=True, cls=DjangoJSONEncoder, ensure_ascii=False),
    )


#: Rows one requeue transaction locks, requeues and logs; "Requeue all" of a large dead-letter
#: queue runs several, each short, instead of one UPDATE holding every row's lock.
REQUEUE_CHUNK = 500


def _requeue(request, queryset) -> int:
    """Requeue the dead rows of ``queryset`` and record each one in its admin history (who
    put it back in the queue, and when), as Django's own bulk delete records each row.

    Chunks of ``REQUEUE_CHUNK`` rows in primary key order: each is locked, requeued and logged
    in one transaction, so a row is logged exactly when it was requeued, and no statement
    names more ids than a backend takes."""
    outbox = EventOutbox(None)  # its database alone: no transport (a broker down)
    dead = OutboxEvent.objects.using(outbox.db).filter(
        status=OutboxStatus.DEAD, pk__in=queryset.values("pk")
    )
    content_type = ContentType.objects.get_for_model(OutboxEvent)
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


class OutboxTypeFilter(admin.SimpleListFilter):
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


logger = logging.getLogger("django_arc.outbox")


def _relay_now() -> dict:
    """The relay's counts; ``{"refused": <message>}`` when an ``ARC["OUTBOX"]`` value is one
    the relay cannot run with (a ``BATCH_SIZE`` of 0 on a server that runs no checks, or
    arc.E008 silenced: it was a 500), its message naming the setting; or
    ``{"unbuilt": <exception type>}`` when the transport cannot be built (a constructor
    reaching a broker that is down): logged here with its traceback, said on the page,
    never a 500."""
    try:
        outbox = get_outbox()
    except OutboxSettingError as exc:
        logger.error("Relay now: nothing relayed: %s", log_text(exc))
        return {"refused": str(exc)}
    except Exception as exc:
        logger.exception("Relay now: the transport could not be built; nothing relayed")
        return {"unbuilt": type(exc).__name__}
    return run_relay(
        outbox,
        max_batches=RELAY_NOW_MAX_BATCHES,
        until_drained=True,
        # a database error ends it, as it ends a Celery tick: retried every half second up
        # to the 10 batches, the request slept 4.5 s to report one failure ten times
        stop_on_error=True,
    ).to_dict()


@admin.register(OutboxEvent)
class OutboxEventAdmin(RefuseOddInputMixin, admin.ModelAdmin):
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
    paginator = EstimatedCountPaginator
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
    @admin.display(description="last error")
    def last_error_excerpt(self, obj: OutboxEvent) -> str:
        return Truncator(obj.last_error or "").chars(80) or "-"

    @admin.display(description="last error")
    def last_error_full(self, obj: OutboxEvent) -> str:
        if not obj.last_error:
            return "-"
        return format_html('<pre style="white-space: pre-wrap; margin: 0">{}</pre>', obj.last_error)

    @admin.display(description="payload")
    def payload_pretty(self, obj: OutboxEvent) -> str:
        return _pretty_json(obj.payload)

    @admin.display(description="meta")
    def meta_pretty(self, obj: OutboxEvent) -> str:
        return _pretty_json(obj.meta)

    def get_search_results(self, request, queryset, search_term):
        """An event id first, through its unique index (as pasted, lower-cased or dashed:
        :func:`~django_arc.admin_input.id_spellings`); else Django's search, the type's
        substring. Django's search alone compares ``UPPER(event_id)``, which the index does
        not serve, ORed with ``LIKE`` on the type: finding one event by its id read the whole
        outbox, twice (count and page)."""
        term = search_term.strip()
        if term:
            by_id = queryset.filter(event_id__in=id_spellings(term))
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
        if obj is not None and obj.status == OutboxStatus.PENDING:
            return False
        return super().has_delete_permission(request, obj)

    def get_actions(self, request):
        actions = super().get_actions(request)
        # Bulk delete would happily drop pending events; "purge" is the safe bulk removal.
        actions.pop("delete_selected", None)
        return actions

    # -- actions -------------------------------------------------------------------------------
    @admin.action(description="Requeue selected", permissions=["change"])
    def requeue_selected(self, request, queryset) -> None:
        selected = queryset.count()
        requeued = _requeue(request, queryset)
        message = f"Requeued {requeued} dead event(s)."
        if selected > requeued:
            message += (
                f" {selected - requeued} selected event(s) were not dead and were left alone."
            )
        self.message_user(request, message, messages.SUCCESS)

    @admin.action(description="Purge delivered older than retention", permissions=["delete"])
    def purge_delivered(self, request, queryset) -> None:
        days = arc_settings.OUTBOX.get("DELIVERED_RETENTION_DAYS", 7)
        try:
            age = retention_age(days, "ARC['OUTBOX']['DELIVERED_RETENTION_DAYS']")
        except ValueError as exc:  # arc.E008 says so at start-up: never a 500 here
            self.message_user(request, f"Nothing purged: {exc}", messages.ERROR)
            return
        # counted back from the clock that wrote delivered_at (the database's on
        # PostgreSQL), as the relay's purge() counts: not this admin server's; a batch per
        # statement, as the task and the command delete ("Select all" of a week of events);
        # on the database the outbox is written to, as requeue: the changelist's queryset
        # reads, and a router may send reads to a replica; no transport (get_outbox() builds
        # it): a broker that is down must not keep the table from being purged
        outbox_db = EventOutbox(None).db
        rows = OutboxEvent.objects.using(outbox_db).filter(pk__in=queryset.values("pk"))
        deleted = purge_delivered(rows, age)
        if deleted:
            # one entry for the purge, not one a row as Django's delete_selected writes (a
            # week of events is 100,000 of them): who purged, when, and how many went
            LogEntry.objects.create(
                user_id=request.user.pk,
                content_type=ContentType.objects.get_for_model(OutboxEvent),
                object_id=None,
                object_repr=f"{deleted} delivered outbox event(s)",
                action_flag=DELETION,
                change_message=f"Purged {deleted} delivered event(s) older than {days} day(s) "
                "(DELIVERED_RETENTION_DAYS).",
            )
        self.message_user(
            request,
            f"Purged {deleted} delivered event(s) older than {days} day(s); pending, dead and "
            "recent rows were kept.",
            messages.SUCCESS,
        )

    # -- dead-letter page ----------------------------------------------------------------------
    def get_urls(self):
        """The dead-letter page, "Relay now", and Django's own views, each outside
        ``ATOMIC_REQUESTS``: a requeue's chunks and a relay's batches commit one by one,
        as documented, instead of becoming savepoints of one request transaction that
        holds every requeued row's lock until the page answers (and every relayed row's
        delivery until then). Django's views that write open their own transaction (the
        change and delete forms, a purge's ``QuerySet.delete()``)."""
        opts = self.model._meta
        name = f"{opts.app_label}_{opts.model_name}_dead_letters"
        relay = f"{opts.app_label}_{opts.model_name}_relay_now"
        urls = [
            path("dead-letters/", self.admin_site.admin_view(self.dead_letters_view), name=name),
            path("relay-now/", self.admin_site.admin_view(self.relay_now_view), name=relay),
            *super().get_urls(),
        ]
        for url in urls:
            for alias in connections:
                transaction.non_atomic_requests(using=alias)(url.callback)
        return urls

    def changelist_view(self, request, extra_context=None):
        extra_context = {**(extra_context or {}), "can_relay": self.has_change_permission(request)}
        return super().changelist_view(request, extra_context)

    def relay_now_view(self, request):
        """POST: relay pending events now with :func:`django_arc.outbox.run_relay` (the loop
        of ``arc_relay`` and the Celery task), at most ``RELAY_NOW_MAX_BATCHES`` batches, then
        back to the changelist with the counts."""
        if request.method != "POST":
            return HttpResponseRedirect(self._url("changelist"))
        if not self.has_change_permission(request):
            raise PermissionDenied
        totals = _relay_now()
        if "refused" in totals:  # django-arc's own message, naming the setting
            self.message_user(request, f"Nothing relayed: {totals['refused']}", messages.ERROR)
            return HttpResponseRedirect(self._url("changelist"))
        if "unbuilt" in totals:
            # the exception's type only: its text (a broker's address) is in the log
            self.message_user(
                request,
                "Nothing relayed: the transport could not be built "
                f"({totals['unbuilt']}); see the django_arc.outbox log.",
                messages.ERROR,
            )
            return HttpResponseRedirect(self._url("changelist"))
        level = messages.SUCCESS
        if totals["publish_failed"] or totals["errors"]:
            level = messages.WARNING
        self.message_user(
            request,
            f"Relayed {totals['relayed']} event(s) in {totals['batches']} batch(es); "
            f"{totals['publish_failed']} failed to publish ({totals['dead_lettered']} went "
            f"dead), {totals['errors']} batch(es) hit a database error.",
            level,
        )
        return HttpResponseRedirect(self._url("changelist"))

    def _url(self, name: str) -> str:
        opts = self.model._meta
        return reverse(f"{self.admin_site.name}:{opts.app_label}_{opts.model_name}_{name}")

    def dead_letters_view(self, request):
        """Dead rows, oldest first, with their full ``last_error``; POST requeues the ticked
        ones (or all of them with ``requeue_all``)."""
        if not self.has_view_permission(request):
            raise PermissionDenied
        dead = OutboxEvent.objects.filter(status=OutboxStatus.DEAD).order_by("id")
        url = reverse(
            f"{self.admin_site.name}:{self.model._meta.app_label}_"
            f"{self.model._meta.model_name}_dead_letters"
        )
        if request.method == "POST":
            if not self.has_change_permission(request):
                raise PermissionDenied
            if request.POST.get("requeue_all"):
                target = dead
            else:
                # ids that are not primary keys (text, past the column's range) select
                # nothing, as a stale page's vanished rows do
                ids = [v for v in request.POST.getlist("ids") if is_primary_key(OutboxEvent, v)]
                target = dead.filter(pk__in=[int(v) for v in ids])
            requeued = _requeue(request, target)
            if requeued:
                self.message_user(request, f"Requeued {requeued} dead event(s).", messages.SUCCESS)
            else:
                self.message_user(
                    request, "Nothing was requeued: no dead event selected.", messages.WARNING
                )
            return HttpResponseRedirect(url)
        page = Paginator(dead, 100).get_page(request.GET.get("p"))
        context = {
            **self.admin_site.each_context(request),
            "opts": self.model._meta,
            "title": "Dead letters",
            "subtitle": None,
            "page": page,
            "can_requeue": self.has_change_permission(request),
            "changelist_url": reverse(
                f"{self.admin_site.name}:{self.model._meta.app_label}_"
                f"{self.model._meta.model_name}_changelist"
            ),
        }
        return TemplateResponse(request, "admin/django_arc/outboxevent/dead_letters.html", context)
