"""REST API of billing under /api/v1/billing/: tariffs, session costs, invoices (with their PDF,
XML and CSV), bulk exports and revenue. Reading is scoped by accounts.access (another tenant's
object is a 404); writing is for finance and operator admins (403 for the rest)."""

from collections.abc import Iterator
from contextlib import contextmanager
from decimal import Decimal

from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import transaction as db
from django.http import FileResponse, HttpResponse
from django.utils import timezone
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import mixins, serializers, status, viewsets
from rest_framework.decorators import action, api_view
from rest_framework.exceptions import NotFound
from rest_framework.exceptions import ValidationError as ApiValidationError
from rest_framework.permissions import SAFE_METHODS, BasePermission, IsAuthenticated
from rest_framework.request import Request
from rest_framework.response import Response

from accounts import access
from accounts.models import Organization
from billing import einvoice, exports, invoices, services, tariffs, tasks
from billing.access import invoices_for, revenue_sites_for, session_costs_for, tariffs_for
from billing.models import (
    ExportJob,
    Invoice,
    InvoiceLine,
    SessionCost,
    Tariff,
    TariffAssignment,
    TariffVersion,
    TimeWindow,
)
from csms import csvfiles


class MayEditBilling(BasePermission):
    message = "Only finance and operator admins change billing."

    def has_permission(self, request, view) -> bool:
        return request.method in SAFE_METHODS or access.may_edit_billing(request.user)


class WindowSerializer(serializers.ModelSerializer):
    class Meta:
        model = TimeWindow
        fields = ["label", "weekdays", "start", "end", "price_kwh", "price_minute"]
        extra_kwargs = {"price_minute": {"required": False}}


class VersionSerializer(serializers.ModelSerializer):
    windows = WindowSerializer(many=True, required=False)

    class Meta:
        model = TariffVersion
        fields = ["number", "valid_from", "price_kwh", "price_minute", "session_fee",
                  "idle_price_minute", "idle_grace_minutes", "min_price", "max_price",
                  "vat_rate", "bills_empty_sessions", "note", "windows", "created_at"]
        read_only_fields = ["number", "created_at"]


class AssignmentSerializer(serializers.ModelSerializer):
    class Meta:
        model = TariffAssignment
        fields = ["id", "site", "station", "customer"]


class TariffSerializer(serializers.ModelSerializer):
    versions = VersionSerializer(many=True, read_only=True)
    assignments = AssignmentSerializer(many=True, read_only=True)
    first_version = VersionSerializer(write_only=True, help_text="Prices of version 1.")

    class Meta:
        model = Tariff
        fields = ["id", "name", "issuer", "currency", "versions", "assignments",
                  "first_version"]


def _specs(windows: list[dict]) -> list[tariffs.WindowSpec]:
    return [tariffs.WindowSpec(w["label"], w["weekdays"], w["start"], w["end"],
                               w["price_kwh"], w.get("price_minute") or Decimal(0))
            for w in windows]


def _refuse(error: DjangoValidationError) -> ApiValidationError:
    return ApiValidationError({"detail": error.messages})


@extend_schema(tags=["billing"])
class TariffViewSet(mixins.CreateModelMixin, viewsets.ReadOnlyModelViewSet):
    """Tariffs with their versions and where they apply. Prices change by a new version."""

    serializer_class = TariffSerializer
    permission_classes = [IsAuthenticated, MayEditBilling]

    def get_queryset(self):
        return tariffs_for(self.request.user).prefetch_related(
            "versions__windows", "assignments").order_by("name", "pk")

    def perform_create(self, serializer) -> None:
        data = dict(serializer.validated_data)
        version = dict(data.pop("first_version"))
        windows = _specs(version.pop("windows", []))
        try:
            serializer.instance = tariffs.create_tariff(
                **data, windows=windows, user=self.request.user, **version)
        except DjangoValidationError as error:
            raise _refuse(error) from None

    @extend_schema(request=VersionSerializer, responses=VersionSerializer)
    @action(detail=True, methods=["post"])
    def versions(self, request: Request, pk=None) -> Response:
        """A new version: valid from now or later, after the latest one."""
        tariff = self.get_object()
        serializer = VersionSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = dict(serializer.validated_data)
        windows = _specs(data.pop("windows", []))
        try:
            version = tariffs.add_version(tariff, windows=windows, user=request.user, **data)
        except DjangoValidationError as error:
            raise _refuse(error) from None
        return Response(VersionSerializer(version).data, status=status.HTTP_201_CREATED)

    @extend_schema(request=AssignmentSerializer, responses=AssignmentSerializer)
    @action(detail=True, methods=["post"])
    def assignments(self, request: Request, pk=None) -> Response:
        """Apply the tariff at a site or a station, for everyone or one customer."""
        tariff = self.get_object()
        serializer = AssignmentSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        try:
            assignment = tariffs.assign(tariff, **serializer.validated_data, user=request.user)
        except DjangoValidationError as error:
            raise _refuse(error) from None
        return Response(AssignmentSerializer(assignment).data, status=status.HTTP_201_CREATED)


class SessionCostSerializer(serializers.ModelSerializer):
    provisional = serializers.BooleanField(
        read_only=True, help_text="The cost so far (running, or idle with the car still "
                                  "plugged in): amounts change until the state is final.")
    transaction_id = serializers.CharField(source="transaction.transaction_id", read_only=True)
    station = serializers.CharField(source="transaction.station_id", read_only=True)
    started_at = serializers.DateTimeField(source="transaction.started_at", read_only=True)
    stopped_at = serializers.DateTimeField(source="transaction.stopped_at", read_only=True)

    class Meta:
        model = SessionCost
        fields = ["id", "transaction", "transaction_id", "station", "started_at", "stopped_at",
                  "customer", "tariff_version", "state", "note", "currency", "energy_wh",
                  "charging_seconds", "idle_seconds", "billable_idle_seconds", "energy_amount",
                  "time_amount", "idle_amount", "session_fee", "cap_adjustment", "net",
                  "vat_rate", "vat_amount", "gross", "provisional", "corrected_energy_wh",
                  "breakdown", "priced_at", "invoice"]
        read_only_fields = fields


class ExcludeSerializer(serializers.Serializer):
    note = serializers.CharField(max_length=200, required=False, default="")


class CorrectEnergySerializer(serializers.Serializer):
    energy_wh = serializers.DecimalField(max_digits=15, decimal_places=3, min_value=Decimal(0))
    reason = serializers.CharField(max_length=200)


@extend_schema(tags=["billing"], parameters=[
    OpenApiParameter("state", str, enum=SessionCost.State.values)])
class SessionCostViewSet(viewsets.ReadOnlyModelViewSet):
    """What each session costs (running, final, needing review, ...)."""

    serializer_class = SessionCostSerializer
    permission_classes = [IsAuthenticated, MayEditBilling]

    def get_queryset(self):
        costs = session_costs_for(self.request.user).select_related(
            "transaction").order_by("-transaction__started_at", "-pk")
        state = self.request.query_params.get("state")
        return costs.filter(state=state) if state else costs

    def _decide(self, decision) -> Response:
        try:
            cost = decision(self.get_object())
        except ValueError as error:
            raise ApiValidationError({"detail": str(error)}) from None
        return Response(SessionCostSerializer(cost).data)

    @extend_schema(request=None)
    @action(detail=True, methods=["post"])
    def accept(self, request: Request, pk=None) -> Response:
        """Bill a session that needed review as priced (400 when it cannot be priced as it
        is: correct its energy, or exclude it)."""
        return self._decide(lambda cost: services.accept(cost, request.user))

    @extend_schema(request=CorrectEnergySerializer)
    @action(detail=True, methods=["post"])
    def correct(self, request: Request, pk=None) -> Response:
        """Price and bill the session with the energy a person established
        ({"energy_wh": "12345.000", "reason": "meter rollover"})."""
        serializer = CorrectEnergySerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        return self._decide(lambda cost: services.correct_energy(
            cost, request.user, data["energy_wh"], data["reason"]))

    @extend_schema(request=ExcludeSerializer)
    @action(detail=True, methods=["post"])
    def exclude(self, request: Request, pk=None) -> Response:
        """Never bill this session ({"note": "why"})."""
        serializer = ExcludeSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        return self._decide(lambda cost: services.exclude(cost, request.user,
                                                          serializer.validated_data["note"]))


class InvoiceLineSerializer(serializers.ModelSerializer):
    energy_kwh = serializers.DecimalField(max_digits=15, decimal_places=3, read_only=True)

    class Meta:
        model = InvoiceLine
        fields = ["position", "transaction", "description", "started_at", "stopped_at",
                  "site_name", "station_id", "card", "energy_kwh", "duration_seconds",
                  "idle_seconds", "net_amount", "vat_rate"]


class InvoiceSerializer(serializers.ModelSerializer):
    lines = InvoiceLineSerializer(many=True, read_only=True)
    vat = serializers.SerializerMethodField()

    class Meta:
        model = Invoice
        fields = ["id", "number", "kind", "status", "issuer", "customer", "corrects",
                  "period_start", "period_end", "issue_date", "due_date", "currency",
                  "seller", "buyer", "buyer_reference", "note", "net_total", "vat_total",
                  "gross_total", "vat", "lines", "issued_at", "paid_at", "voided_at"]
        read_only_fields = fields

    def get_vat(self, invoice: Invoice) -> list[dict]:
        return [{"rate": str(g.rate), "base": str(g.base), "amount": str(g.amount)}
                for g in invoices.vat_groups(invoice)]


class GenerateSerializer(serializers.Serializer):
    month = serializers.RegexField(r"^\d{4}-(0[1-9]|1[0-2])\Z", help_text="YYYY-MM")
    customer = serializers.PrimaryKeyRelatedField(
        queryset=Organization.objects.all(), required=False, allow_null=True, default=None,
        help_text="Only this customer organization's sessions (default: every customer).")
    issue = serializers.BooleanField(default=False)


class CreditSerializer(serializers.Serializer):
    rebill = serializers.BooleanField(default=False)
    reason = serializers.CharField(max_length=300, required=False, default="")


def _month(text: str):
    year, number = (int(part) for part in text.split("-"))
    return invoices.month(year, number)


@extend_schema(tags=["billing"])
@contextmanager
def _refusals_readable() -> Iterator[None]:
    """What an invoice's state or the EN 16931 rules refuse, as a 400 that says it."""
    try:
        yield
    except invoices.InvoiceError as error:
        raise ApiValidationError({"detail": str(error)}) from None
    except DjangoValidationError as error:
        raise ApiValidationError({"detail": " ".join(error.messages)}) from None


class InvoiceViewSet(viewsets.ReadOnlyModelViewSet):
    """Invoices and credit notes; their files; issue, pay, credit, discard."""

    serializer_class = InvoiceSerializer
    permission_classes = [IsAuthenticated, MayEditBilling]

    def get_queryset(self):
        return (invoices_for(self.request.user)
                .prefetch_related("lines").order_by("-created_at", "-id"))

    def _change(self, change) -> Response:
        with _refusals_readable():
            invoice = change(self.get_object(), user=self.request.user)
        return Response(InvoiceSerializer(invoice).data)

    @extend_schema(request=GenerateSerializer, responses=InvoiceSerializer(many=True))
    @action(detail=False, methods=["post"])
    def generate(self, request: Request) -> Response:
        """Invoices of a month for every customer with billable sessions."""
        serializer = GenerateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        with _refusals_readable():
            made = invoices.generate(*_month(data["month"]), customer=data["customer"],
                                     issue=data["issue"], user=request.user)
        return Response(InvoiceSerializer(made, many=True).data,
                        status=status.HTTP_201_CREATED)

    @extend_schema(request=None)
    @action(detail=True, methods=["post"])
    def issue(self, request: Request, pk=None) -> Response:
        return self._change(invoices.issue)

    @extend_schema(request=None)
    @action(detail=True, methods=["post"])
    def pay(self, request: Request, pk=None) -> Response:
        return self._change(invoices.mark_paid)

    @extend_schema(request=CreditSerializer)
    @action(detail=True, methods=["post"])
    def credit(self, request: Request, pk=None) -> Response:
        """Cancel with a credit note (returned); `rebill` bills the sessions again."""
        serializer = CreditSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        return self._change(lambda invoice, user: invoices.credit(
            invoice, **serializer.validated_data, user=user))

    @extend_schema(request=None, responses={204: None})
    @action(detail=True, methods=["post"])
    def discard(self, request: Request, pk=None) -> Response:
        try:
            invoices.discard(self.get_object(), request.user)
        except invoices.InvoiceError as error:
            raise ApiValidationError({"detail": str(error)}) from None
        return Response(status=status.HTTP_204_NO_CONTENT)

    def _download(self, kind: str) -> HttpResponse:
        try:
            return exports.invoice_download(
                self.request.user, self.get_object(), kind,
                csvfiles.layout_named(self.request.query_params.get("separator"))).response()
        except einvoice.EInvoiceError as error:
            raise ApiValidationError({"detail": str(error)}) from None

    @extend_schema(responses={(200, "application/pdf"): bytes})
    @action(detail=True, methods=["get"], url_path="pdf")
    def pdf_file(self, request: Request, pk=None) -> HttpResponse:
        return self._download("pdf")

    @extend_schema(responses={(200, "application/xml"): bytes})
    @action(detail=True, methods=["get"], url_path="xml")
    def xml_file(self, request: Request, pk=None) -> HttpResponse:
        return self._download("xml")

    @extend_schema(responses={(200, "text/csv"): bytes})
    @action(detail=True, methods=["get"], url_path="csv")
    def csv_file(self, request: Request, pk=None) -> HttpResponse:
        return self._download("csv")


class ExportJobSerializer(serializers.ModelSerializer):
    month = serializers.RegexField(r"^\d{4}-(0[1-9]|1[0-2])\Z", write_only=True)
    percent = serializers.IntegerField(read_only=True)

    class Meta:
        model = ExportJob
        fields = ["id", "month", "period_start", "period_end", "status", "total", "done",
                  "percent", "error", "created_at", "finished_at"]
        read_only_fields = ["period_start", "period_end", "status", "total", "done", "error",
                            "created_at", "finished_at"]


class MayExport(BasePermission):
    message = "Only finance and operator admins export billing."

    def has_permission(self, request, view) -> bool:
        return access.may_edit_billing(request.user)


@extend_schema(tags=["billing"])
class ExportJobViewSet(mixins.CreateModelMixin, viewsets.ReadOnlyModelViewSet):
    """Bulk exports of a month as a zip, built in the background: poll `done` of `total`."""

    serializer_class = ExportJobSerializer
    permission_classes = [IsAuthenticated, MayExport]

    def get_queryset(self):
        return ExportJob.objects.order_by("-created_at", "-id")

    def perform_create(self, serializer) -> None:
        start, end = _month(serializer.validated_data.pop("month"))
        job = serializer.save(requested_by=self.request.user, period_start=start,
                              period_end=end)
        db.on_commit(lambda: tasks.build_export.delay(job.pk))

    @extend_schema(responses={(200, "application/zip"): bytes})
    @action(detail=True, methods=["get"])
    def download(self, request: Request, pk=None) -> FileResponse:
        job = self.get_object()
        if job.status != ExportJob.Status.DONE or not job.file:
            raise NotFound("The export is not ready.")
        return exports.export_download(request.user, job)


@extend_schema(tags=["billing"], parameters=[OpenApiParameter("month", str,
                                                              description="YYYY-MM")],
               responses={200: dict})
@api_view(["GET"])
def revenue(request: Request) -> Response:
    """Revenue per site and customer of a month (default: this month)."""
    text = request.query_params.get("month") or timezone.now().strftime("%Y-%m")
    try:
        start, end = _month(text)
    except ValueError:
        raise ApiValidationError({"month": "YYYY-MM, e.g. 2026-11"}) from None
    rows = exports.revenue(revenue_sites_for(request.user), start, end)
    return Response({"period_start": start, "period_end": end, "rows": [
        {"site": r.site.pk, "site_name": r.site.name, "customer": r.customer,
         "sessions": r.sessions, "energy_wh": str(r.energy_wh), "net": str(r.net),
         "vat": str(r.vat), "gross": str(r.gross)} for r in rows]})
