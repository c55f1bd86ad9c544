"""drf-spectacular extensions for django-arc's own classes (loaded when drf-spectacular is
installed), so schema generation knows how service clients authenticate."""

from drf_spectacular.extensions import OpenApiAuthenticationExtension


class ServiceKeyAuthenticationScheme(OpenApiAuthenticationExtension):
    target_class = "django_arc.auth.ServiceKeyAuthentication"
    name = "arcServiceKey"

    def get_security_definition(self, auto_schema):
        return {
            "type": "http",
            "scheme": "bearer",
            "description": "A service client's key (`Authorization: Bearer <key>`; "
            "`X-Api-Key: <key>` is accepted too).",
        }
