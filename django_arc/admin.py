"""Admin registrations for django-arc's models."""


# --- ServiceClient ------------------------------------------------------------------------
# The raw key is generated in save_model and rendered straight into the add response (never
# put in the session or a message cookie, never shown again).

from django import forms as _sc_forms  # noqa: E402
from django.contrib import admin as _sc_admin  # noqa: E402
from django.contrib import messages as _sc_messages  # noqa: E402
from django.template.response import TemplateResponse as _SCTemplateResponse  # noqa: E402

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

    def clean_scopes(self) -> list[str]:
        value = self.cleaned_data.get("scopes") or ""
        return [part.strip() for part in value.split(",") if part.strip()]


@_sc_admin.register(_ServiceClient)
class ServiceClientAdmin(_sc_admin.ModelAdmin):
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

    @_sc_admin.action(description="Deactivate selected service clients")
    def deactivate(self, request, queryset) -> None:
        count = queryset.filter(active=True).update(active=False)
        self.message_user(request, f"Deactivated {count} service client(s).", _sc_messages.SUCCESS)
