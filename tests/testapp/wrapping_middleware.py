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
