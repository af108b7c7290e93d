"""Which stations and sessions a person sees and may command, by the roles of accounts.access:
a property manager their organizations' sites' stations, a fleet admin the sessions charged
with their organizations' cards at any site."""

from django.contrib.auth.models import AbstractBaseUser
from django.db.models import Q, QuerySet

from accounts.access import (
    id_token_numbers_for,
    id_tokens_for,
    roles,
    sees_everything,
    sites_for,
    sites_operated_by,
)
from accounts.models import Membership
from stations.models import Station, Transaction

Role = Membership.Role


def stations_for(user: AbstractBaseUser) -> QuerySet[Station]:
    if sees_everything(user):
        return Station.objects.all()
    return Station.objects.filter(site__in=sites_for(user))


def transactions_for(user: AbstractBaseUser) -> QuerySet[Transaction]:
    if sees_everything(user):
        return Transaction.objects.all()
    if not user.is_authenticated:
        return Transaction.objects.none()
    return Transaction.objects.filter(
        Q(station__site__in=sites_for(user)) | Q(id_token__in=id_tokens_for(user))
    )


def card_searchable(user: AbstractBaseUser) -> Q:
    """Sessions a search by card number may find: those of cards whose numbers the user sees,
    and of numbers unknown to us. Matching a masked card's number would tell it."""
    if sees_everything(user):
        return Q()
    return Q(id_token__isnull=True) | Q(id_token__in=id_token_numbers_for(user))


def may_operate_station(user: AbstractBaseUser, station: Station) -> bool:
    """Change or command this station (may_operate() answers for stations in general)."""
    if Role.OPERATOR_ADMIN in roles(user):
        return True
    return station.site_id is not None and sites_operated_by(user).filter(
        pk=station.site_id
    ).exists()
