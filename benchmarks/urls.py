from django.urls import include, path
from rest_framework.routers import DefaultRouter

from benchmarks.benchapp.drf_views import (
    CacheKeyedItemViewSet,
    DatabaseKeyedItemViewSet,
    ItemOutboxViewSet,
    ItemViewSet,
)
from benchmarks.benchapp.resources import access, bench, presets_site
from benchmarks.benchapp.views import DrfNoop, noop

router = DefaultRouter()
router.register("items", ItemViewSet, basename="drf-items")
outbox_router = DefaultRouter()
outbox_router.register("items", ItemOutboxViewSet, basename="drf-outbox-items")
# the idempotency ceiling of cache.py: the hand-written outbox create with a key by hand
keyed_urls = []
for store, viewset in (("cache", CacheKeyedItemViewSet), ("database", DatabaseKeyedItemViewSet)):
    keyed_router = DefaultRouter()
    keyed_router.register("items", viewset, basename=f"drf-keyed-{store}-items")
    keyed_urls.append(path(f"drf-keyed-{store}/", include(keyed_router.urls)))

urlpatterns = [
    path("drf/", include(router.urls)),
    path("drf-outbox/", include(outbox_router.urls)),
    path("arc/", include(bench.urls)),
    path("access/", include(access.urls)),
    path("noop/", noop),
    path("drf-noop/", DrfNoop.as_view()),
    path("presets/", include(presets_site.urls)),
    # last: the other targets' URL resolution does not pass these patterns
    *keyed_urls,
]
