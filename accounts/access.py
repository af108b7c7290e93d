"""Who may see what: the one place every page, API endpoint, export and live socket asks.

Operator admins (and superusers) see everything; finance sees everything read-only; a property
manager sees their organizations' sites; a fleet admin sees their organizations' ID tokens and
the sessions charged with them, at any site.
"""

from django.contrib.auth.models import AbstractBaseUser
from django.db.models import Q, QuerySet

from accounts.models import IdToken, Membership
from stations.models import Site, Station, Transaction

Role = Membership.Role
_SEE_ALL = {Role.OPERATOR_ADMIN, Role.FINANCE}


def roles(user: AbstractBaseUser) -> set[str]:
    if not user.is_authenticated:
        return set()
    if user.is_superuser:
        return {Role.OPERATOR_ADMIN}
    return set(user.memberships.values_list("role", flat=True))


def sees_everything(user: AbstractBaseUser) -> bool:
    return bool(roles(user) & _SEE_ALL)


def may_operate(user: AbstractBaseUser) -> bool:
    """Remote actions on stations (start, stop, reset, ...)."""
    return bool(roles(user) & {Role.OPERATOR_ADMIN, Role.PROPERTY_MANAGER})


def _org_ids(user: AbstractBaseUser, role: str) -> list[int]:
    return list(
        user.memberships.filter(role=role).values_list("organization_id", flat=True)
    )


def sites_for(user: AbstractBaseUser) -> QuerySet[Site]:
    if sees_everything(user):
        return Site.objects.all()
    if not user.is_authenticated:
        return Site.objects.none()
    return Site.objects.filter(organization__in=_org_ids(user, Role.PROPERTY_MANAGER))


def stations_for(user: AbstractBaseUser) -> QuerySet[Station]:
    if sees_everything(user):
        return Station.objects.all()
    return Station.objects.filter(site__in=sites_for(user))


def id_tokens_for(user: AbstractBaseUser) -> QuerySet[IdToken]:
    if sees_everything(user):
        return IdToken.objects.all()
    if not user.is_authenticated:
        return IdToken.objects.none()
    return IdToken.objects.filter(organization__in=_org_ids(user, Role.FLEET_ADMIN))


def transactions_for(user: AbstractBaseUser) -> QuerySet[Transaction]:
    if sees_everything(user):
        return Transaction.objects.all()
    if not user.is_authenticated:
        return Transaction.objects.none()
    return Transaction.objects.filter(
        Q(station__site__in=sites_for(user)) | Q(id_token__in=id_tokens_for(user))
    )
