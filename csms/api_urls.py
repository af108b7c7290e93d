"""REST API v1, included at /api/v1/. The schema is at /api/schema/, its docs at /api/docs/."""

from django.http import HttpRequest, JsonResponse
from django.urls import path, re_path
from rest_framework.routers import DefaultRouter

from accounts.api.views import (
    AuditViewSet,
    CardImportViewSet,
    CardPolicyViewSet,
    IdTokenViewSet,
    LocalListViewSet,
    MembershipViewSet,
    OrganizationViewSet,
    SiteAccessViewSet,
    SiteViewSet,
)
from billing.api import views as billing_api
from stations.api.views import CallViewSet, StationViewSet, TransactionViewSet


class Router(DefaultRouter):
    # No ".json" suffix routes: a station id may end in ".json" itself.
    include_format_suffixes = False


def not_found(request: HttpRequest) -> JsonResponse:
    """Unknown API paths answer in JSON like the rest of the API, not with an HTML page."""
    return JsonResponse({"detail": "No such API endpoint."}, status=404)


router = Router()
router.register("stations", StationViewSet, basename="station")
router.register("id-tokens", IdTokenViewSet, basename="id-token")
router.register("card-imports", CardImportViewSet, basename="card-import")
router.register("local-lists", LocalListViewSet, basename="local-list")
router.register("site-accesses", SiteAccessViewSet, basename="site-access")
router.register("card-policies", CardPolicyViewSet, basename="card-policy")
router.register("memberships", MembershipViewSet, basename="membership")
router.register("organizations", OrganizationViewSet, basename="organization")
router.register("sites", SiteViewSet, basename="site")
router.register("audit", AuditViewSet, basename="audit")
router.register("transactions", TransactionViewSet, basename="transaction")
router.register("calls", CallViewSet, basename="call")
router.register("billing/tariffs", billing_api.TariffViewSet, basename="tariff")
router.register("billing/session-costs", billing_api.SessionCostViewSet,
                basename="session-cost")
router.register("billing/invoices", billing_api.InvoiceViewSet, basename="invoice")
router.register("billing/exports", billing_api.ExportJobViewSet, basename="export")

urlpatterns = [
    *router.urls,
    path("billing/revenue/", billing_api.revenue, name="billing-revenue"),
    # Only paths ending in "/": a path without one still gets APPEND_SLASH's redirect first.
    re_path(r"^.*/\Z", not_found),
]
