from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularRedocView, SpectacularSwaggerView

from csms import health, metrics

urlpatterns = [
    # For load balancers and monitoring, per process (docs/operations.md).
    path("health", health.health, name="health"),
    path("health/live", health.live, name="health-live"),
    path("metrics", metrics.metrics_view, name="metrics"),
    path("admin/", admin.site.urls),
    path("accounts/", include("django.contrib.auth.urls")),
    path("api/v1/", include("csms.api_urls")),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="schema"), name="api-docs"),
    path("api/redoc/", SpectacularRedocView.as_view(url_name="schema"), name="api-redoc"),
    path("", include("accounts.web.urls")),
    path("billing/", include("billing.web.urls")),
    path("", include("stations.web.urls")),
]
