"""REST API v1: who may write what; ID tokens, card imports, local lists, memberships,
organizations and sites, and the audit log.

Reading needs no permission class: every queryset goes through accounts.access, so another
tenant's object is a 404 and never a 403 that would reveal it exists. The classes below decide
writes and commands, which some readers (finance) may not do.
"""

from django.db import transaction
from django.db.models import Count, QuerySet
from django.http import HttpResponse, StreamingHttpResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema, extend_schema_view
from rest_framework import mixins, serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import APIException, PermissionDenied
from rest_framework.parsers import FormParser, MultiPartParser
from rest_framework.permissions import SAFE_METHODS, BasePermission, IsAuthenticated
from rest_framework.request import Request
from rest_framework.response import Response

from accounts import access, audit, card_use, cards, organizations, people
from accounts.api.serializers import (
    AuditEntrySerializer,
    AuditFilterSerializer,
    BulkCardsSerializer,
    BulkResultSerializer,
    CardImportRequestSerializer,
    CardImportSerializer,
    CardPolicySerializer,
    IdTokenSerializer,
    LocalListPushSerializer,
    LocalListSerializer,
    MembershipSerializer,
    OrganizationSerializer,
    SiteAccessSerializer,
    SiteSerializer,
)
from accounts.models import (
    AuditEntry,
    CardImport,
    IdToken,
    Membership,
    Organization,
    Site,
    SiteAccess,
)
from stations.access import may_operate_station, stations_for
from stations.api.serializers import CallSerializer
from stations.models import LocalListState, Station
from stations.services import commands, local_lists


class MayOperateStations(BasePermission):
    """Changing and commanding stations: operator admins, and property managers on their own
    sites. The object is a station or something of one (a transaction)."""

    message = "Only operator admins and property managers may change or command stations."

    def has_permission(self, request, view) -> bool:
        return request.method in SAFE_METHODS or access.may_operate(request.user)

    def has_object_permission(self, request, view, obj) -> bool:
        if request.method in SAFE_METHODS:
            return True
        station = obj if isinstance(obj, Station) else obj.station
        return may_operate_station(request.user, station)


class MayManageIdTokens(BasePermission):
    """Writing ID tokens: operator admins, and fleet admins for their fleets' tokens."""

    message = "Only operator admins and fleet admins may change ID tokens."

    def has_permission(self, request, view) -> bool:
        return request.method in SAFE_METHODS or access.may_manage_id_tokens(request.user)

    def has_object_permission(self, request, view, obj: IdToken) -> bool:
        return request.method in SAFE_METHODS or access.may_manage_id_tokens_of(
            request.user, obj.organization_id
        )


class Conflict(APIException):
    status_code = status.HTTP_409_CONFLICT
    default_code = "conflict"


class IsOperatorAdmin(BasePermission):
    message = "Only operator admins may do this."

    def has_permission(self, request, view) -> bool:
        return access.may_administer(request.user)


def csv_response(lines, filename: str) -> StreamingHttpResponse:
    response = StreamingHttpResponse(lines, content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    return response


@extend_schema(tags=["id-tokens"])
class IdTokenViewSet(viewsets.ModelViewSet):
    """RFID cards, key codes and app tokens drivers start charging with. Every change is
    audited and followed by the stations' local lists."""

    serializer_class = IdTokenSerializer
    permission_classes = [IsAuthenticated, MayManageIdTokens]

    def get_queryset(self) -> QuerySet[IdToken]:
        return access.id_tokens_for(self.request.user).prefetch_related("allowed_sites")

    def perform_destroy(self, instance: IdToken) -> None:
        try:
            cards.delete(self.request.user, instance)
        except cards.CardError as error:
            raise Conflict(str(error)) from None

    @extend_schema(request=BulkCardsSerializer, responses=BulkResultSerializer,
                   summary="Block, unblock or expire many tokens")
    @action(detail=False, methods=["post"])
    def bulk(self, request: Request) -> Response:
        form = BulkCardsSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        tokens = access.id_tokens_managed_by(request.user).filter(pk__in=form.validated_data["ids"])
        verb = form.validated_data["action"]
        if verb == "expire":
            changed = cards.expire(request.user, tokens)
        else:
            status_ = IdToken.Status.BLOCKED if verb == "block" else IdToken.Status.ACCEPTED
            changed = cards.set_status(request.user, tokens, status_)
        return Response({"changed": changed})

    @extend_schema(responses={(200, "text/csv"): OpenApiTypes.STR},
                   summary="All tokens you see, as CSV (the import's columns)")
    @action(detail=False, methods=["get"])
    def export(self, request: Request) -> StreamingHttpResponse:
        return csv_response(cards.export_csv(request.user, self.get_queryset()), "cards.csv")

    @extend_schema(request={"multipart/form-data": CardImportRequestSerializer},
                   responses={202: CardImportSerializer},
                   summary="Import tokens from a CSV file (runs in the background)")
    @action(detail=False, methods=["post"], url_path="import",
            parser_classes=[MultiPartParser, FormParser])
    def import_file(self, request: Request) -> Response:
        form = CardImportRequestSerializer(data=request.data, context={"request": request})
        form.is_valid(raise_exception=True)
        upload = form.validated_data["file"]
        try:
            job = cards.import_start(request.user, form.validated_data["organization"],
                                     upload.name, upload.read())
        except cards.CardError as error:
            raise serializers.ValidationError({"file": [str(error)]}) from None
        job.refresh_from_db()
        return Response(CardImportSerializer(job).data, status=status.HTTP_202_ACCEPTED)


@extend_schema(tags=["id-tokens"])
class CardImportViewSet(viewsets.ReadOnlyModelViewSet):
    """CSV imports of ID tokens and their progress."""

    serializer_class = CardImportSerializer

    def get_queryset(self) -> QuerySet[CardImport]:
        return access.card_imports_for(self.request.user).defer("content")

    @extend_schema(request=None, responses={200: CardImportSerializer},
                   summary="Apply the changes to existing cards the import lists")
    @action(detail=True, methods=["post"])
    def confirm(self, request: Request, pk: str) -> Response:
        return self._decide(cards.import_confirm)

    @extend_schema(request=None, responses={200: CardImportSerializer},
                   summary="Leave every card as it is")
    @action(detail=True, methods=["post"])
    def discard(self, request: Request, pk: str) -> Response:
        return self._decide(cards.import_discard)

    def _decide(self, decide) -> Response:
        job = self.get_object()
        if not access.may_manage_id_tokens_of(self.request.user, job.organization_id):
            raise PermissionDenied("Only those who manage these cards may decide.")
        try:
            decide(self.request.user, job)
        except cards.CardError as error:
            raise Conflict(str(error)) from None
        job.refresh_from_db()
        return Response(CardImportSerializer(job).data)

    @extend_schema(responses={(200, "text/csv"): OpenApiTypes.STR},
                   summary="The rejected lines and why, as CSV")
    @action(detail=True, methods=["get"])
    def rejections(self, request: Request, pk: str) -> HttpResponse:
        job = self.get_object()
        response = HttpResponse(cards.rejections_csv(job), content_type="text/csv")
        response["Content-Disposition"] = f'attachment; filename="rejections-{job.pk}.csv"'
        return response


def local_list_states(stations: QuerySet[Station]) -> QuerySet[LocalListState]:
    return LocalListState.objects.filter(station__in=stations).annotate(
        entry_count=Count("station__local_list_entries")).order_by("station_id")


@extend_schema(tags=["local-lists"])
@extend_schema_view(partial_update=extend_schema(summary="Turn the local list on or off"))
class LocalListViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin,
                       mixins.UpdateModelMixin, viewsets.GenericViewSet):
    """Local authorization lists kept on stations: in sync or not, versions sent, acknowledged
    and reported. POST /local-lists/ {"station": id} turns one on."""

    serializer_class = LocalListSerializer
    permission_classes = [IsAuthenticated, MayOperateStations]
    lookup_value_regex = r"[^/]+"
    http_method_names = ["get", "post", "patch", "head", "options"]

    def get_queryset(self) -> QuerySet[LocalListState]:
        return local_list_states(stations_for(self.request.user))

    def _station(self) -> Station:
        state = self.get_object()
        return state.station

    def perform_update(self, serializer) -> None:
        if "enabled" in serializer.validated_data:
            local_lists.set_enabled(self.request.user, serializer.instance.station,
                                    serializer.validated_data["enabled"])

    @extend_schema(request=LocalListSerializer, responses={201: LocalListSerializer},
                   summary="Keep a local list on a station")
    def create(self, request: Request) -> Response:
        station = stations_for(request.user).filter(pk=request.data.get("station")).first()
        if station is None:
            return Response({"detail": "No such station."}, status=404)
        if not may_operate_station(request.user, station):
            raise PermissionDenied(MayOperateStations.message)
        local_lists.set_enabled(request.user, station, True)
        state = self.get_queryset().get(pk=station.pk)
        return Response(LocalListSerializer(state).data, status=status.HTTP_201_CREATED)

    @extend_schema(request=LocalListPushSerializer, responses={202: LocalListSerializer},
                   summary="Send the list now (differential, or full)")
    @action(detail=True, methods=["post"])
    def push(self, request: Request, pk: str) -> Response:
        station = self._station()
        form = LocalListPushSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        with transaction.atomic():
            outcome = local_lists.sync(station, full=form.validated_data["full"],
                                       user=request.user)
        state = self.get_queryset().get(pk=station.pk)
        return Response({**LocalListSerializer(state).data, "outcome": outcome},
                        status=status.HTTP_202_ACCEPTED)

    @extend_schema(request=None, responses={202: CallSerializer},
                   summary="Ask the charger for its list version (GetLocalListVersion)")
    @action(detail=True, methods=["post"])
    def version(self, request: Request, pk: str) -> Response:
        return self._call(local_lists.get_version)

    @extend_schema(request=None, responses={202: CallSerializer},
                   summary="Empty the charger's authorization cache (ClearCache)")
    @action(detail=True, methods=["post"], url_path="clear-cache")
    def clear_cache(self, request: Request, pk: str) -> Response:
        return self._call(local_lists.clear_cache)

    def _call(self, send) -> Response:
        station = self._station()
        try:
            call = send(station, self.request.user)
        except commands.CommandError as error:
            return Response({"detail": str(error)}, status=400)
        return Response(CallSerializer(call, context={"request": self.request}).data,
                        status=status.HTTP_202_ACCEPTED)


@extend_schema(tags=["memberships"])
class MembershipViewSet(viewsets.ModelViewSet):
    """Who has which role in which organization (operator admins only)."""

    serializer_class = MembershipSerializer
    permission_classes = [IsAuthenticated, IsOperatorAdmin]
    queryset = Membership.objects.select_related("user", "organization").order_by("pk")

    def _apply(self, do):
        try:
            return do()
        except people.MembershipError as error:
            raise serializers.ValidationError({"detail": str(error)}) from None

    def perform_create(self, serializer) -> None:
        data = serializer.validated_data
        serializer.instance = self._apply(lambda: people.member_add(
            self.request.user, data["user"], data["organization"], data["role"]))

    def perform_update(self, serializer) -> None:
        membership = serializer.instance
        data = serializer.validated_data
        if (data.get("user", membership.user) != membership.user
                or data.get("organization", membership.organization) != membership.organization):
            raise serializers.ValidationError(
                {"detail": "Only the role changes; remove the membership and add another."})
        serializer.instance = self._apply(lambda: people.role_change(
            self.request.user, membership, data.get("role", membership.role)))

    def perform_destroy(self, instance: Membership) -> None:
        self._apply(lambda: people.member_remove(self.request.user, instance))


class IsOperatorAdminToWrite(BasePermission):
    message = "Only operator admins may create or change organizations and sites."

    def has_permission(self, request, view) -> bool:
        return request.method in SAFE_METHODS or access.may_administer(request.user)


class _Administered(mixins.CreateModelMixin, mixins.UpdateModelMixin,
                    viewsets.ReadOnlyModelViewSet):
    """Read what one sees; operator admins create and change (never delete: sites keep their
    sessions' history) through accounts.organizations, which audits."""

    permission_classes = [IsAuthenticated, IsOperatorAdminToWrite]

    def _apply(self, serializer, do) -> None:
        try:
            serializer.instance = do()
        except organizations.OrganizationError as error:
            raise serializers.ValidationError({"detail": str(error)}) from None


@extend_schema(tags=["organizations"])
class OrganizationViewSet(_Administered):
    """Tenants: the operator, property owners, fleets. Everyone sees their own; operator admins
    and finance see all."""

    serializer_class = OrganizationSerializer

    def get_queryset(self) -> QuerySet[Organization]:
        return access.organizations_for(self.request.user).order_by("name")

    def perform_create(self, serializer) -> None:
        data = serializer.validated_data
        self._apply(serializer, lambda: organizations.organization_create(
            self.request.user, data["name"], data.get("kind", Organization.Kind.PROPERTY)))

    def perform_update(self, serializer) -> None:
        current, data = serializer.instance, serializer.validated_data
        self._apply(serializer, lambda: organizations.organization_change(
            self.request.user, current, data.get("name", current.name),
            data.get("kind", current.kind)))


@extend_schema(tags=["sites"])
class SiteViewSet(_Administered):
    """Places with chargers, each owned by an organization whose property managers see it."""

    serializer_class = SiteSerializer

    def get_queryset(self) -> QuerySet[Site]:
        return access.sites_for(self.request.user).order_by("name")

    def perform_create(self, serializer) -> None:
        data = serializer.validated_data
        self._apply(serializer, lambda: organizations.site_create(
            self.request.user, data["organization"], data["name"], data.get("address", ""),
            data["time_zone"]))

    def perform_update(self, serializer) -> None:
        current, data = serializer.instance, serializer.validated_data
        self._apply(serializer, lambda: organizations.site_change(
            self.request.user, current, data.get("organization", current.organization),
            data.get("name", current.name), data.get("address", current.address),
            data.get("time_zone", current.time_zone)))


@extend_schema(tags=["audit"])
@extend_schema_view(list=extend_schema(parameters=[AuditFilterSerializer]))
class AuditViewSet(viewsets.ReadOnlyModelViewSet):
    """Who did what, newest first (operator admins only). Append-only."""

    serializer_class = AuditEntrySerializer
    permission_classes = [IsAuthenticated, IsOperatorAdmin]

    def get_queryset(self) -> QuerySet[AuditEntry]:
        if self.action in ("list", "export"):
            filters = AuditFilterSerializer(data=self.request.query_params)
            filters.is_valid(raise_exception=True)
            return audit.entries(**filters.validated_data)
        return AuditEntry.objects.all()

    @extend_schema(parameters=[AuditFilterSerializer],
                   responses={(200, "text/csv"): OpenApiTypes.STR},
                   summary="The (filtered) log as CSV")
    @action(detail=False, methods=["get"])
    def export(self, request: Request) -> StreamingHttpResponse:
        return csv_response(audit.export_csv(request.user, self.get_queryset()), "audit.csv")



@extend_schema(tags=["id-tokens"])
class SiteAccessViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin,
                        mixins.CreateModelMixin, mixins.DestroyModelMixin,
                        viewsets.GenericViewSet):
    """Agreements letting an organization's cards charge at a site (besides the site owner's
    cards, the operator's, and roaming ones). Made and ended by operator admins and by the
    site's owner."""

    serializer_class = SiteAccessSerializer

    def get_queryset(self) -> QuerySet[SiteAccess]:
        return access.site_accesses_for(self.request.user).select_related("organization",
                                                                           "site")

    def perform_create(self, serializer) -> None:
        try:
            serializer.instance = card_use.access_grant(
                self.request.user, serializer.validated_data["organization"],
                serializer.validated_data["site"])
        except card_use.AccessError as error:
            raise serializers.ValidationError({"organization": [str(error)]}) from None

    def perform_destroy(self, instance: SiteAccess) -> None:
        if not access.sites_operated_by(self.request.user).filter(pk=instance.site_id).exists():
            raise PermissionDenied("Only the site's owner and operator admins may end it.")
        card_use.access_revoke(self.request.user, instance)


@extend_schema(tags=["id-tokens"])
class CardPolicyViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin,
                        mixins.UpdateModelMixin, viewsets.GenericViewSet):
    """How each organization's cards may be used: roaming (every station; offered by an
    operator admin, consented to by the organization's own admin) and one session per card
    (a card charging elsewhere is refused with ConcurrentTx)."""

    serializer_class = CardPolicySerializer
    http_method_names = ["get", "patch", "head", "options"]

    def get_queryset(self) -> QuerySet[Organization]:
        return access.card_policy_organizations_for(self.request.user).order_by("name")

    def perform_update(self, serializer) -> None:
        organization = serializer.instance
        for name in serializer.validated_data:
            if not access.may_set_card_policy(self.request.user, organization, name):
                raise PermissionDenied(f"You may not change {name} of {organization}.")
        card_use.policy_set(self.request.user, organization, **serializer.validated_data)
        serializer.instance.refresh_from_db()
