"""Which tariffs, session costs and invoices a person sees, by the roles of accounts.access."""

from django.contrib.auth.models import AbstractBaseUser
from django.db.models import QuerySet

from accounts.access import organization_ids, sees_everything, sites_for
from accounts.models import Membership, Site
from billing.models import Invoice, SessionCost, Tariff
from stations.access import transactions_for

Role = Membership.Role


def tariffs_for(user: AbstractBaseUser) -> QuerySet[Tariff]:
    """Every tariff for finance and operators; a property manager's: those of their sites."""
    if sees_everything(user):
        return Tariff.objects.all()
    return Tariff.objects.filter(assignments__site__in=sites_for(user)).distinct()


def session_costs_for(user: AbstractBaseUser) -> QuerySet[SessionCost]:
    """Costs of the sessions the user sees (their sites', their fleet's cards')."""
    if sees_everything(user):
        return SessionCost.objects.all()
    return SessionCost.objects.filter(transaction__in=transactions_for(user))


def invoices_for(user: AbstractBaseUser) -> QuerySet[Invoice]:
    """All invoices for finance and operators; a fleet admin sees the issued invoices (and
    credit notes) addressed to their organizations, never a draft."""
    if sees_everything(user):
        return Invoice.objects.all()
    if not user.is_authenticated:
        return Invoice.objects.none()
    return Invoice.objects.filter(customer__in=organization_ids(user, Role.FLEET_ADMIN)).exclude(
        status=Invoice.Status.DRAFT)


def revenue_sites_for(user: AbstractBaseUser) -> QuerySet[Site]:
    """Sites whose revenue the user may read: all for finance and operators, a property
    manager's own."""
    return sites_for(user)
