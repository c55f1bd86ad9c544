"""``manage.py arc_create_client --name N --org ORG --scopes a,b``: create a service client.

The raw key is printed once and is not recoverable afterwards (only its SHA-256 is stored);
lose it and you create a new client or rotate the key in the admin-less way
(``client.set_new_key(); client.save()``).

``--org`` must name an existing organization. django-arc does not own the organization model,
so it asks the resources' presets (``Preset.organization_models``) which models their rows'
organization ids point at (e.g. ``Product.organization`` → ``shop.Organization``). A client for
an organization that does not exist would be a key that can never read anything, or one
waiting for whatever organization is created under that id later.
"""

from __future__ import annotations

from typing import Any

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import models

from django_arc.clients import ServiceClient


def organization_models() -> list[type[models.Model]]:
    """The models organization ids point at, as the presets of every registered resource
    name them (:meth:`~django_arc.presets.base.Preset.organization_models`)."""
    from django_arc.sites import _all_sites

    found: list[type[models.Model]] = []
    for site in _all_sites:
        for resource in site.resources:
            for preset in resource.preset_list:
                for model in sorted(
                    preset.organization_models(resource), key=lambda m: m._meta.label
                ):
                    if model not in found:
                        found.append(model)
    return found


def _exists(model: type[models.Model], org: str) -> bool:
    pk = model._meta.pk
    try:
        value = pk.to_python(org)
        pk.run_validators(value)  # out of the column's range: no such row
        # (Django 4.2's SQLite backend has no range to validate: its driver overflows)
        return model._default_manager.filter(pk=value).exists()
    except (ValidationError, ValueError, TypeError, OverflowError):
        return False


def _parse_scopes(value: str) -> list[str]:
    scopes = [part.strip() for part in value.split(",")]
    return [scope for scope in scopes if scope]


class Command(BaseCommand):
    help = "Create a service client bound to an organization and print its API key (once)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--name", required=True, help="Human-readable client name.")
        parser.add_argument(
            "--org", required=True, help="Primary key of the organization the client acts for."
        )
        parser.add_argument(
            "--scopes", default="", help="Comma-separated scopes, e.g. orders:read,sync."
        )
        parser.add_argument(
            "--inactive", action="store_true", help="Create the client deactivated."
        )
        parser.add_argument(
            "--key-only", action="store_true", help="Print only the key (for scripts)."
        )

    def handle(self, *args: Any, **options: Any) -> None:
        name = options["name"].strip()
        org = str(options["org"]).strip()
        if not name:
            raise CommandError("--name must not be empty.")
        if not org:
            raise CommandError("--org must not be empty.")
        if len(name) > 100 or len(org) > 128:
            raise CommandError("--name is limited to 100 characters, --org to 128.")
        targets = organization_models()
        for model in targets:
            if not _exists(model, org):
                raise CommandError(
                    f"Organization {org!r} does not exist ({model._meta.label}); create it first."
                )
        if not targets:
            self.stderr.write(
                f"Cannot check that organization {org!r} exists: no resource's preset "
                "points at an organization model."
            )
        scopes = _parse_scopes(options["scopes"])
        client, raw_key = ServiceClient.objects.create_with_key(
            name=name, organization_id=org, scopes=scopes, active=not options["inactive"]
        )
        if options["key_only"]:
            self.stdout.write(raw_key)
            return
        self.stdout.write(self.style.SUCCESS(f"Created service client '{client.name}'."))
        self.stdout.write(f"client_id:    {client.client_id}")
        self.stdout.write(f"organization: {client.organization_id}")
        self.stdout.write(f"scopes:       {', '.join(client.scopes) or '(none)'}")
        self.stdout.write(f"active:       {client.active}")
        self.stdout.write(f"key:          {raw_key}")
        self.stdout.write(
            self.style.WARNING("Store this key now: it is shown only once and cannot be recovered.")
        )
