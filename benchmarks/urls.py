from django.urls import include, path
from rest_framework.routers import DefaultRouter

from benchmarks.benchapp.drf_views import ItemOutboxViewSet, ItemViewSet
from benchmarks.benchapp.resources import access, bench, presets_site
from benchmarks.benchapp.views import DrfNoop, noop

router = DefaultRouter()
router.register("items", ItemViewSet, basename="drf-items")
outbox_router = DefaultRouter()
outbox_router.register("items", ItemOutboxViewSet, basename="drf-outbox-items")

urlpatterns = [
    path("drf/", include(router.urls)),
    path("drf-outbox/", include(outbox_router.urls)),
    path("arc/", include(bench.urls)),
    path("access/", include(access.urls)),
    path("noop/", noop),
    path("drf-noop/", DrfNoop.as_view()),
    path("presets/", include(presets_site.urls)),
]
