"""REST API v1: who may write what, and the ID token endpoints.

Reading needs no permission class: every queryset goes through accounts.access, so another
tenant's object is a 404 and never a 403 that would reveal it exists. The classes below decide
writes and commands, which some readers (finance) may not do.
"""

from drf_spectacular.utils import extend_schema
from rest_framework import viewsets
from rest_framework.permissions import SAFE_METHODS, BasePermission, IsAuthenticated

from accounts import access
from accounts.models import IdToken
from accounts.serializers import IdTokenSerializer
from stations.models import Station


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
        return access.may_operate_station(request.user, station)


class MayManageIdTokens(BasePermission):
    """Writing ID tokens: operator admins, and fleet admins for their fleets' tokens."""

    message = "Only operator admins and fleet admins may change ID tokens."

    def has_permission(self, request, view) -> bool:
        return request.method in SAFE_METHODS or access.may_manage_id_tokens(request.user)

    def has_object_permission(self, request, view, obj: IdToken) -> bool:
        return request.method in SAFE_METHODS or access.may_manage_id_tokens_of(
            request.user, obj.organization_id
        )


@extend_schema(tags=["id-tokens"])
class IdTokenViewSet(viewsets.ModelViewSet):
    """RFID cards, key codes and app tokens drivers start charging with."""

    serializer_class = IdTokenSerializer
    permission_classes = [IsAuthenticated, MayManageIdTokens]

    def get_queryset(self):
        return access.id_tokens_for(self.request.user)
