"""``ResourceSite``: the registry that turns registered resources into URLs (like ``admin.site``)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from django.core.exceptions import ImproperlyConfigured
from django.utils.module_loading import autodiscover_modules

from .querycache.invalidation import watch, watch_all

if TYPE_CHECKING:
    from .resources import Resource

_all_sites: list[ResourceSite] = []
#: How many times a site was created or its resources changed (see :func:`registry_state`).
_changes = 0


def registry_state() -> tuple[int, int]:
    """A value that differs whenever the registered resources may have: a site created, a
    resource registered or unregistered, a site dropped from :data:`_all_sites` (as tests
    do). What a memo of "which resources are registered" is checked against, instead of
    listing them on every write."""
    return _changes, len(_all_sites)


def _changed() -> None:
    global _changes
    _changes += 1


#: resources served on no site: routed by hand with ``Resource.as_viewset()``
_routed_by_hand: list[Resource] = []


def served_resources() -> list[Resource]:
    """Every resource that serves requests: those registered on a site, and those routed by
    hand. What reads "the resources" to answer a request (the tables a write retires
    answers of, the columns organization ids are read with) must see both: a resource
    routed by hand serves the same rows to the same callers."""
    return [*(r for site in _all_sites for r in site.resources), *_routed_by_hand]


def routed_by_hand(resource: Resource) -> None:
    """Count ``resource`` (``as_viewset()`` of one on no site) among the served resources;
    a change of the registry (:func:`registry_state`) like a registration."""
    if not any(known is resource for known in _routed_by_hand):
        _routed_by_hand.append(resource)
        _changed()


class ResourceSite:
    """A set of resources served under one URL prefix.

    ``arc`` is the default instance; a project may create more (``ResourceSite(name="internal")``)
    to serve another set of resources under another prefix and URL namespace.
    """

    def __init__(self, name: str = "arc") -> None:
        self.name = name
        self._registry: dict[str, Resource] = {}
        _all_sites.append(self)
        _changed()

    def register(self, resource_class: type[Resource]) -> type[Resource]:
        """Register a ``Resource`` subclass; usable as a class decorator.

        Raises ``ImproperlyConfigured`` if another resource already uses the same name.
        """
        from .resources import Resource

        if not (isinstance(resource_class, type) and issubclass(resource_class, Resource)):
            raise ImproperlyConfigured(
                f"{self.name}.register() expects a Resource subclass, got {resource_class!r}"
            )
        resource = resource_class(site=self)
        existing = self._registry.get(resource.name)
        if existing is not None:
            raise ImproperlyConfigured(
                f"Resource name '{resource.name}' is already registered on site '{self.name}' "
                f"by {type(existing).__qualname__}; cannot register {resource_class.__qualname__}."
            )
        self._registry[resource.name] = resource
        _changed()
        # A cached resource's model signals invalidate its answers (admin saves, shell).
        watch(resource)
        return resource_class

    def unregister(self, resource_class_or_name: type[Resource] | str) -> None:
        name = (
            resource_class_or_name
            if isinstance(resource_class_or_name, str)
            else resource_class_or_name(site=self).name
        )
        self._registry.pop(name, None)
        _changed()

    def is_registered(self, name: str) -> bool:
        return name in self._registry

    def get_resource(self, name: str) -> Resource:
        return self._registry[name]

    @property
    def resources(self) -> list[Resource]:
        return list(self._registry.values())

    def get_urls(self) -> list[Any]:
        from .routers import ResourceRouter

        router = ResourceRouter()
        for resource in self._registry.values():
            router.register(resource.url_prefix, resource.as_viewset(), basename=resource.basename)
        return router.urls

    def autodiscover(self) -> None:
        """Import ``resources.py`` of every installed app, so their ``register`` calls run
        (django-arc's app config does it at start-up, like the admin's)."""
        autodiscover()

    @property
    def urls(self) -> tuple[list[Any], str]:
        """For ``include()``: ``path("api/", include(arc.urls))``. URL names are
        ``<site name>:<resource>-list`` / ``-detail`` (the site name is the URL namespace); register resources before the URLconf
        is imported (``resources.py`` modules are autodiscovered first)."""
        return self.get_urls(), self.name


def autodiscover() -> None:
    """Import ``resources.py`` of every installed app so their ``@arc.register`` calls run,
    then watch every resource again: one registered before the app registry was ready (a
    ``register`` run from a models module) was watched without the relations and declared
    queryset joins only a ready registry can read, and requests, which read them, stored
    answers no write of those models retired."""
    autodiscover_modules("resources")
    watch_all()


arc = ResourceSite()
