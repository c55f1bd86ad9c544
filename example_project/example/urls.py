"""URLs of the example shop: the admin, the arc API, its OpenAPI schema, Swagger UI and Redoc."""

from django.contrib import admin
from django.urls import include, path
from django.views.generic import RedirectView
from drf_spectacular.views import SpectacularAPIView, SpectacularRedocView, SpectacularSwaggerView

from django_arc import arc

urlpatterns = [
    path("", RedirectView.as_view(url="/api/products/", permanent=False)),
    path("admin/", admin.site.urls),
    # Log-in/log-out links for the browsable API (session authentication).
    path("api-auth/", include("rest_framework.urls")),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="schema"), name="swagger-ui"),
    path("api/redoc/", SpectacularRedocView.as_view(url_name="schema"), name="redoc"),
    # shop/resources.py registers ProductResource and OrderResource on ``arc``
    # (autodiscovered at start-up, like admin.py).
    path("api/", include(arc.urls)),
]
