"""Who may see and do what: roles, and the organizations, sites and ID tokens each person sees.
The apps above scope their own records by these (stations.access, billing.access); every page,
API endpoint, export and live socket asks them.

Operator admins (and superusers) see everything; finance sees everything read-only; a property
manager sees their organizations' sites; a fleet admin sees their organizations' ID tokens and
the sessions charged with them, at any site.
"""

from django.contrib.auth.models import AbstractBaseUser
from django.db.models import Q, QuerySet

from accounts.models import CardImport, IdToken, Membership, Organization, Site, SiteAccess

Role = Membership.Role
_SEE_ALL = {Role.OPERATOR_ADMIN, Role.FINANCE}


def roles(user: AbstractBaseUser) -> set[str]:
    if not user.is_authenticated:
        return set()
    if user.is_superuser:
        return {Role.OPERATOR_ADMIN}
    return {role for role, _ in _memberships(user)}


def _memberships(user: AbstractBaseUser) -> tuple[tuple[str, int], ...]:
    """(role, organization id) pairs; asked many times per request (every check comes here),
    read once per user object."""
    cached = getattr(user, "_csms_memberships", None)
    if cached is None:
        cached = user._csms_memberships = tuple(
            user.memberships.values_list("role", "organization_id"))
    return cached


def sees_everything(user: AbstractBaseUser) -> bool:
    return bool(roles(user) & _SEE_ALL)


def may_operate(user: AbstractBaseUser) -> bool:
    """Remote actions on stations (start, stop, reset, ...)."""
    return bool(roles(user) & {Role.OPERATOR_ADMIN, Role.PROPERTY_MANAGER})


def organization_ids(user: AbstractBaseUser, role: str) -> list[int]:
    return [organization for held, organization in _memberships(user) if held == role]


def organizations_for(user: AbstractBaseUser) -> QuerySet[Organization]:
    """Every organization for those who see everything, else those the user has a role in."""
    if sees_everything(user):
        return Organization.objects.all()
    if not user.is_authenticated:
        return Organization.objects.none()
    return Organization.objects.filter(pk__in=[organization for _, organization
                                               in _memberships(user)])


def sites_for(user: AbstractBaseUser) -> QuerySet[Site]:
    if sees_everything(user):
        return Site.objects.all()
    if not user.is_authenticated:
        return Site.objects.none()
    return Site.objects.filter(organization__in=organization_ids(user, Role.PROPERTY_MANAGER))


def id_tokens_for(user: AbstractBaseUser) -> QuerySet[IdToken]:
    if sees_everything(user):
        return IdToken.objects.all()
    if not user.is_authenticated:
        return IdToken.objects.none()
    return IdToken.objects.filter(organization__in=organization_ids(user, Role.FLEET_ADMIN))


def id_token_numbers_for(user: AbstractBaseUser) -> QuerySet[IdToken]:
    """The cards whose numbers the user sees in full, and may start a session with: every card
    for those who see everything, else the cards of the user's own organizations (whatever the
    role). Everyone else's card numbers are masked (accounts.card_use.masked)."""
    if sees_everything(user):
        return IdToken.objects.all()
    if not user.is_authenticated:
        return IdToken.objects.none()
    return IdToken.objects.filter(
        organization__in={organization for _, organization in _memberships(user)})


def sees_card_number(user: AbstractBaseUser, organization_id: int | None) -> bool:
    """id_token_numbers_for() for one card of `organization_id` (None: the operator's own),
    without a query."""
    if sees_everything(user):
        return True
    return organization_id is not None and any(
        organization == organization_id for _, organization in _memberships(user))


def site_accesses_for(user: AbstractBaseUser) -> QuerySet[SiteAccess]:
    """Agreements at the sites the user sees, and those of the user's own organizations."""
    if sees_everything(user):
        return SiteAccess.objects.all()
    if not user.is_authenticated:
        return SiteAccess.objects.none()
    own = {organization for _, organization in _memberships(user)}
    return SiteAccess.objects.filter(Q(site__in=sites_for(user)) | Q(organization__in=own))


def card_policy_organizations_for(user: AbstractBaseUser) -> QuerySet[Organization]:
    """Organizations whose card policy (roaming, one session per card) the user sees."""
    if sees_everything(user):
        return Organization.objects.all()
    if not user.is_authenticated:
        return Organization.objects.none()
    return Organization.objects.filter(
        pk__in={organization for _, organization in _memberships(user)})


def may_set_card_policy(user: AbstractBaseUser, organization: Organization, field: str) -> bool:
    """Roaming is offered by the operator's admins and consented to by the organization's own
    admins (a fleet's admins, a property owner's managers), never on its behalf; either may
    decide whether its cards charge at one place at a time."""
    own = organization.pk in (organization_ids(user, Role.FLEET_ADMIN)
                              + organization_ids(user, Role.PROPERTY_MANAGER))
    operator = Role.OPERATOR_ADMIN in roles(user)
    return {"roaming": operator, "roaming_consent": own,
            "one_session_per_card": own or operator}.get(field, False)


def sites_operated_by(user: AbstractBaseUser) -> QuerySet[Site]:
    """Sites whose stations the user may change and command.

    Narrower than sites_for(): finance sees every site and operates none, so a user who is
    finance somewhere and property manager elsewhere operates only the latter's sites.
    """
    if Role.OPERATOR_ADMIN in roles(user):
        return Site.objects.all()
    if not user.is_authenticated:
        return Site.objects.none()
    return Site.objects.filter(organization__in=organization_ids(user, Role.PROPERTY_MANAGER))


def id_token_organizations_for(user: AbstractBaseUser) -> QuerySet[Organization]:
    """Organizations whose ID tokens the user may create, change and delete: any for an
    operator admin, their own fleets for a fleet admin. Tokens of no organization are the
    operator's."""
    if Role.OPERATOR_ADMIN in roles(user):
        return Organization.objects.all()
    if not user.is_authenticated:
        return Organization.objects.none()
    return Organization.objects.filter(pk__in=organization_ids(user, Role.FLEET_ADMIN))


def may_manage_id_tokens(user: AbstractBaseUser) -> bool:
    """Write ID tokens of some organization (which ones: id_token_organizations_for())."""
    return bool(roles(user) & {Role.OPERATOR_ADMIN, Role.FLEET_ADMIN})


def may_manage_id_tokens_of(user: AbstractBaseUser, organization_id: int | None) -> bool:
    """Write the ID tokens of this organization (None: the operator's own tokens)."""
    if Role.OPERATOR_ADMIN in roles(user):
        return True
    return organization_id is not None and organization_id in organization_ids(
        user, Role.FLEET_ADMIN
    )


def may_administer(user: AbstractBaseUser) -> bool:
    """Memberships and roles, the audit log: operator admins only."""
    return Role.OPERATOR_ADMIN in roles(user)


def card_imports_for(user: AbstractBaseUser) -> QuerySet[CardImport]:
    """Imports into the organizations whose cards the user manages (the operator's own imports,
    of no organization, are the operator admins')."""
    if Role.OPERATOR_ADMIN in roles(user):
        return CardImport.objects.all()
    return CardImport.objects.filter(organization__in=id_token_organizations_for(user))


def id_tokens_managed_by(user: AbstractBaseUser) -> QuerySet[IdToken]:
    """The ID tokens the user may change: any for an operator admin, their fleets' for a fleet
    admin (narrower than id_tokens_for(), which finance reads too)."""
    if Role.OPERATOR_ADMIN in roles(user):
        return IdToken.objects.all()
    return IdToken.objects.filter(organization__in=id_token_organizations_for(user))


def may_edit_billing(user: AbstractBaseUser) -> bool:
    """Tariffs, pricing decisions, invoices and billing details: finance and operator admins."""
    return bool(roles(user) & {Role.OPERATOR_ADMIN, Role.FINANCE})
