"""Function-factory middlewares wrapping ``ScopeMiddleware`` without naming it as a global
of their module (``tests/test_checks_and_sites.py``, arc.W010)."""

from django_arc import middleware


def through_its_module(get_response):
    """The class reached as its module's attribute (``middleware.ScopeMiddleware``)."""
    return middleware.ScopeMiddleware(get_response)


def imported_inside(get_response):
    """The class imported inside the factory, under another name."""
    from django_arc.middleware import ScopeMiddleware as Scope

    return Scope(get_response)


# -- a middleware module holding a lazy object (rev-fixes19a) ----------------------------------

from django.utils.functional import SimpleLazyObject  # noqa: E402

#: how many times the lazy object below was built (arc.W010 reads code, never runs it)
BUILT = []


def _locate_database():
    """A lazy global a project builds on first use in a request (a GeoIP reader, a client),
    which cannot be built where ``manage.py check`` runs (no database file there)."""
    BUILT.append(1)
    raise RuntimeError("no GeoIP database on this machine")


LOCATOR = SimpleLazyObject(_locate_database)


def locating_middleware(get_response):
    """A function-factory middleware naming a lazy global (and no ``ScopeMiddleware``)."""

    def middleware(request):
        request.locator = LOCATOR
        return get_response(request)

    return middleware
