from collections.abc import Callable

from django.conf import settings
from django.contrib import admin
from django.contrib.auth.decorators import login_required
from django.contrib.auth.views import LoginView
from django.http import HttpRequest, HttpResponse
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularRedocView, SpectacularSwaggerView
from rest_framework.permissions import BasePermission

from accounts.web.forms import ThrottledAdminAuthenticationForm, ThrottledAuthenticationForm
from csms import health, metrics


class MayReadApiDocs(BasePermission):
    """The schema for anyone with API_DOCS_PUBLIC, otherwise for a signed-in person or an
    API client with its token."""

    def has_permission(self, request: HttpRequest, view: object) -> bool:
        return settings.API_DOCS_PUBLIC or request.user.is_authenticated


def api_docs_page(view: Callable) -> Callable:
    """An API docs page: with API_DOCS_PUBLIC for anyone, otherwise a person signs in first."""
    signed_in = login_required(view)

    def page(request: HttpRequest, *args: object, **kwargs: object) -> HttpResponse:
        return (view if settings.API_DOCS_PUBLIC else signed_in)(request, *args, **kwargs)

    return page


admin.site.login_form = ThrottledAdminAuthenticationForm

urlpatterns = [
    # For load balancers and monitoring, per process (docs/operations.md).
    path("health", health.health, name="health"),
    path("health/live", health.live, name="health-live"),
    path("metrics", metrics.metrics_view, name="metrics"),
    path("admin/", admin.site.urls),
    path("accounts/login/",
         LoginView.as_view(authentication_form=ThrottledAuthenticationForm), name="login"),
    path("accounts/", include("django.contrib.auth.urls")),
    path("api/v1/", include("csms.api_urls")),
    path("api/schema/", SpectacularAPIView.as_view(permission_classes=[MayReadApiDocs]),
         name="schema"),
    path("api/docs/", api_docs_page(SpectacularSwaggerView.as_view(url_name="schema")),
         name="api-docs"),
    path("api/redoc/", api_docs_page(SpectacularRedocView.as_view(url_name="schema")),
         name="api-redoc"),
    path("", include("accounts.web.urls")),
    path("billing/", include("billing.web.urls")),
    path("", include("stations.web.urls")),
]
