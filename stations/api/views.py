"""REST API v1: stations, transactions, meter samples and commands.

Commands block until the charger answers or OCPP_CALL_TIMEOUT passes, and answer from the Call
row. No view here runs inside a database transaction: the Call must be committed before the
command is routed, or the consumer holding the socket (maybe in another process) cannot read it.
"""

from collections.abc import Callable

from django.db.models import Prefetch, ProtectedError, QuerySet
from django.shortcuts import get_object_or_404
from drf_spectacular.utils import OpenApiResponse, extend_schema, extend_schema_view
from rest_framework import serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import APIException, PermissionDenied
from rest_framework.pagination import PageNumberPagination
from rest_framework.permissions import IsAuthenticated
from rest_framework.request import Request
from rest_framework.response import Response

from accounts.api.views import MayOperateStations
from stations.access import card_searchable, stations_for, transactions_for
from stations.api.serializers import (
    CallRequestSerializer,
    CallSerializer,
    ErrorSerializer,
    EvseSerializer,
    MeterSampleSerializer,
    StationSerializer,
    TransactionSerializer,
)
from stations.models import Call, Evse, MeterSample, Station, Transaction
from stations.services import commands
from stations.web import actions


class CommandRefused(APIException):
    """A command that cannot be sent as asked; the message says why, for a person."""

    status_code = status.HTTP_400_BAD_REQUEST
    default_code = "command_refused"


class Conflict(APIException):
    status_code = status.HTTP_409_CONFLICT
    default_code = "conflict"


COMMAND_RESPONSES = {
    201: OpenApiResponse(
        CallSerializer,
        description="The call as it ended: accepted, rejected, error (the charger's CALLERROR), "
        "timeout, or not_connected.",
    ),
    400: OpenApiResponse(ErrorSerializer, description="The command cannot be sent as asked."),
    404: OpenApiResponse(ErrorSerializer, description="Not found among what you may see."),
}
COMMAND_DESCRIPTION = (
    "Blocks until the charger answers or the call times out (OCPP_CALL_TIMEOUT, 30 s by "
    "default). The call is recorded whatever its outcome."
)


def _command(request: Request, send: Callable[[], Call]) -> Response:
    """Send a command and answer with the Call as it ended; a refusal is a 400 that says why."""
    try:
        call = send()
    except commands.CommandError as error:
        raise CommandRefused(str(error)) from None
    return Response(CallSerializer(call, context={"request": request}).data,
                    status=status.HTTP_201_CREATED)


def _action_endpoint(entry: actions.RemoteAction) -> Callable:
    """The POST endpoint taking a registry action on the viewset's object: a station, or a
    session for an action on sessions."""

    def endpoint(self: viewsets.GenericViewSet, request: Request, pk: str) -> Response:
        subject = self.get_object()
        station = entry.station_of(subject)
        if not entry.allowed(request.user, station):
            raise PermissionDenied(f"You may not do this to {station.pk}.")
        fields = entry.check(request.data)
        return _command(request, lambda: entry.send(subject, fields, request.user))

    # The router routes an action by its function's name.
    endpoint.__name__ = endpoint.__qualname__ = entry.api_path.replace("-", "_")
    routed = action(detail=True, methods=["post"], url_path=entry.api_path)(endpoint)
    description = f"{entry.help_text} {COMMAND_DESCRIPTION}".lstrip()
    return extend_schema(request=entry.fields, responses=COMMAND_RESPONSES,
                         summary=entry.label, description=description)(routed)


def with_actions(on_session: bool) -> Callable[[type], type]:
    """Give a viewset the registry's actions on stations, or on sessions. It decorates the class
    before the class's own extend_schema, which then applies to these endpoints too."""

    def add(viewset: type) -> type:
        for entry in actions.ACTIONS:
            if entry.on_session == on_session:
                endpoint = _action_endpoint(entry)
                setattr(viewset, endpoint.__name__, endpoint)
        return viewset

    return add


@extend_schema(tags=["stations"])
@extend_schema_view(
    destroy=extend_schema(responses={
        204: None,
        409: OpenApiResponse(ErrorSerializer, description="The station has transactions."),
    }),
)
@with_actions(on_session=False)
class StationViewSet(viewsets.ModelViewSet):
    """Charging stations. The password is write-only; PATCH registration Pending → Accepted
    approves a station that connected on its own (onboarding): the decision is audited, and a
    station connected meanwhile learns it at its next BootNotification (a pending station boots
    again after the heartbeat interval its last boot answer gave it)."""

    serializer_class = StationSerializer
    permission_classes = [IsAuthenticated, MayOperateStations]
    # Station ids may contain "." (the default pattern excludes it, for format suffixes).
    lookup_value_regex = r"[^/]+"

    def get_queryset(self) -> QuerySet[Station]:
        return stations_for(self.request.user).prefetch_related(
            Prefetch("evses", queryset=Evse.objects.prefetch_related("connectors"))
        )

    def perform_destroy(self, instance: Station) -> None:
        try:
            instance.delete()
        except ProtectedError:
            raise Conflict(
                f"{instance.pk} has charging sessions on record, which are kept for billing: "
                "set its registration to Rejected instead of deleting it."
            ) from None

    @extend_schema(responses=CallSerializer(many=True), summary="Calls sent to this station",
                   description="Newest first, with how each ended.")
    @action(detail=True, methods=["get"])
    def calls(self, request: Request, pk: str) -> Response:
        station = self.get_object()
        page = self.paginate_queryset(station.calls.select_related("requested_by"))
        return self.get_paginated_response(
            CallSerializer(page, many=True, context={"request": request}).data)

    @extend_schema(request=CallRequestSerializer, responses=COMMAND_RESPONSES,
                   summary="Send any OCPP action", description=COMMAND_DESCRIPTION)
    @calls.mapping.post
    def call_send(self, request: Request, pk: str) -> Response:
        station = self.get_object()
        form = CallRequestSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        return _command(request, lambda: commands.call_send(
            station, form.validated_data["action"], form.validated_data["payload"],
            user=request.user))


    @extend_schema(request=EvseSerializer, responses={200: EvseSerializer, 404: ErrorSerializer},
                   summary="Set an EVSE's maximum power",
                   description="max_power_w bounds the EVSE's plausible readings: a session "
                   "whose power or energy exceeds it is marked for review instead of priced.")
    @action(detail=True, methods=["patch"], url_path=r"evses/(?P<number>[0-9]+)")
    def evse(self, request: Request, pk: str, number: str) -> Response:
        evse = get_object_or_404(Evse, station=self.get_object(), number=int(number))
        form = EvseSerializer(evse, data=request.data, partial=True)
        form.is_valid(raise_exception=True)
        form.save()
        return Response(form.data)


class TransactionFilterSerializer(serializers.Serializer):
    station = serializers.CharField(required=False, help_text="A station id.")
    id_token = serializers.CharField(required=False, help_text="A token value.")
    state = serializers.ChoiceField(choices=Transaction.State.choices, required=False)


class SamplePagination(PageNumberPagination):
    # A session samples several measurands every minute or so: pages of 50 would be many.
    page_size = 1000
    page_size_query_param = "page_size"
    max_page_size = 10000


@extend_schema(tags=["transactions"])
@extend_schema_view(list=extend_schema(parameters=[TransactionFilterSerializer]))
@with_actions(on_session=True)
class TransactionViewSet(viewsets.ReadOnlyModelViewSet):
    """Charging sessions, newest first. Energies are in Wh, as decimal strings."""

    serializer_class = TransactionSerializer
    permission_classes = [IsAuthenticated, MayOperateStations]

    def get_queryset(self) -> QuerySet[Transaction]:
        queryset = transactions_for(self.request.user).select_related("evse", "connector",
                                                                       "id_token")
        if self.action == "list":
            # Filters narrow the list only: a detail URL names its transaction already.
            filters = TransactionFilterSerializer(data=self.request.query_params)
            filters.is_valid(raise_exception=True)
            lookups = {"station": "station_id", "id_token": "id_token_value", "state": "state"}
            queryset = queryset.filter(
                **{lookups[name]: value for name, value in filters.validated_data.items()}
            )
            if "id_token" in filters.validated_data:  # no guessing at numbers one does not see
                queryset = queryset.filter(card_searchable(self.request.user))
        return queryset

    @extend_schema(responses=MeterSampleSerializer(many=True),
                   summary="Meter samples of the session, oldest first")
    @action(detail=True, pagination_class=SamplePagination)
    def samples(self, request: Request, pk: str) -> Response:
        transaction = self.get_object()
        page = self.paginate_queryset(MeterSample.objects.filter(transaction=transaction))
        return self.get_paginated_response(MeterSampleSerializer(page, many=True).data)


@extend_schema(tags=["calls"])
class CallViewSet(viewsets.ReadOnlyModelViewSet):
    """Commands sent to stations, newest first, with how they ended."""

    serializer_class = CallSerializer

    def get_queryset(self) -> QuerySet[Call]:
        return Call.objects.filter(
            station__in=stations_for(self.request.user)
        ).select_related("requested_by")
