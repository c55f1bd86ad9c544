"""django-arc in the Django admin: service clients here; the outbox
(:mod:`django_arc.outbox.admin`) and the audit log (:mod:`django_arc.audit.admin`) in their
own packages, registered by importing them.

A service client's raw key is generated in ``save_model`` and rendered straight into the add
response (never put in the session or a message cookie, never shown again).
"""

from __future__ import annotations

from django import forms
from django.contrib import admin, messages
from django.template.response import TemplateResponse

from .admin_input import RefuseOddInputMixin
from .audit import admin as audit_admin  # noqa: F401 (registers the audit log)
from .clients import ServiceClient
from .organizations import organization_exists, organization_models
from .outbox import admin as outbox_admin  # noqa: F401 (registers the outbox)


class ServiceClientForm(forms.ModelForm):
    scopes = forms.CharField(
        required=False, help_text="Comma-separated scope names, e.g. orders:read, sync."
    )

    class Meta:
        model = ServiceClient
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
        org = self.cleaned_data.get("organization_id") or ""
        if self.instance.pk and "organization_id" not in self.changed_data:
            return org
        for model in organization_models():
            if not organization_exists(model, org):
                raise forms.ValidationError(
                    f"Organization {org!r} does not exist ({model._meta.label}); create it first."
                )
        return org

    def clean_scopes(self) -> list[str]:
        value = self.cleaned_data.get("scopes") or ""
        return [part.strip() for part in value.split(",") if part.strip()]


@admin.register(ServiceClient)
class ServiceClientAdmin(RefuseOddInputMixin, admin.ModelAdmin):
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

    @admin.display(description="key prefix", ordering="key_prefix")
    def key_prefix_display(self, obj: ServiceClient) -> str:
        return f"{obj.key_prefix}…" if obj.key_prefix else "-"

    def get_fields(self, request, obj=None):
        fields = ["name", "organization_id", "scopes", "active"]
        return fields if obj is None else [*fields, *self.readonly_fields]

    def get_readonly_fields(self, request, obj=None):
        return [] if obj is None else self.readonly_fields

    def save_model(self, request, obj: ServiceClient, form, change: bool) -> None:
        if not change:
            obj._arc_raw_key = obj.set_new_key()
        super().save_model(request, obj, form, change)

    def response_add(self, request, obj: ServiceClient, post_url_continue=None):
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
        response = TemplateResponse(
            request, "admin/django_arc/serviceclient/key_created.html", context
        )
        response["Cache-Control"] = "no-store"
        return response

    @admin.action(description="Deactivate selected service clients", permissions=["change"])
    def deactivate(self, request, queryset) -> None:
        """Deactivate, and record each client deactivated in its admin history (an
        ``UPDATE`` alone leaves no trace of who revoked a key)."""
        clients = list(queryset.filter(active=True))
        count = ServiceClient.objects.filter(
            pk__in=[client.pk for client in clients], active=True
        ).update(active=False)
        for client in clients:
            self.log_change(request, client, "Deactivated (action).")
        self.message_user(request, f"Deactivated {count} service client(s).", messages.SUCCESS)
