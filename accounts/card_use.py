"""Where a card may charge, and who sees its number: the one rule that authorization, local
lists, remote starts and every page apply.

A card charges at a station's site when
- it is the operator's (of the operator organization, or of none): the operator runs every
  station;
- its organization owns the site;
- its organization has an access agreement with the site (SiteAccess: made by an operator admin
  or by the site's owner), or
- its organization roams: the operator offers it roaming and the organization consented.
A card limited to some sites (allowed_sites) charges only there, whatever else holds.

A card's number is shown in full only to people who see the card (access.id_token_numbers_for:
operator admins and finance, members of the card's organization); anyone else who sees
a session or a frame with it (the site's property manager) sees masked().

The writers of agreements and of organizations' card policies (roaming, one session per card)
are here too: each audits itself and tells the local lists to follow.
"""

from django.contrib.auth.models import AbstractBaseUser
from django.db import IntegrityError, transaction
from django.db.models import Q

from accounts import access, audit
from accounts.models import AuditEntry, IdToken, Organization, Site, SiteAccess
from accounts.signals import id_tokens_changed

Action = AuditEntry.Action
MAX_VALUE = IdToken._meta.get_field("value").max_length
# How many of a card number's last characters a person without the card sees.
SHOWN_CHARACTERS = 4


class AccessError(Exception):
    """An agreement or a flag that cannot be changed as asked (said readably)."""


def roams(organization: Organization) -> bool:
    return organization.roaming and organization.roaming_consent


def admits(organization: Organization | None, site_admits: bool) -> bool:
    """Whether a card of `organization` charges at a site that admits that organization (owns
    the site or has its agreement) or not. The allowed_sites limit is the caller's."""
    if organization is None or organization.kind == Organization.Kind.OPERATOR:
        return True
    return site_admits or roams(organization)


def usable_at(site_id: int | None) -> Q:
    """admits() and the allowed_sites limit as a filter on IdToken, for lists of cards."""
    limits = IdToken.allowed_sites.through.objects
    everywhere = (Q(organization__isnull=True) | Q(organization__kind=Organization.Kind.OPERATOR)
                  | Q(organization__roaming=True, organization__roaming_consent=True))
    unlimited = ~Q(pk__in=limits.values("idtoken"))
    if site_id is None:  # a station on no site: only the cards that charge everywhere
        return everywhere & unlimited
    admitted = everywhere | Q(
        organization__in=Site.objects.filter(pk=site_id).values("organization")) | Q(
        organization__in=SiteAccess.objects.filter(site=site_id).values("organization"))
    return admitted & (unlimited | Q(pk__in=limits.filter(site=site_id).values("idtoken")))


# --- card numbers people see --------------------------------------------------------------------

def masked(value: str) -> str:
    """A card number as someone without the card sees it: its last characters, enough to
    tell a driver's card on the phone, never enough to present it."""
    if len(value) <= SHOWN_CHARACTERS:
        return "…"
    return "…" + value[-SHOWN_CHARACTERS:]


def hidden_values(user: AbstractBaseUser, values: set[str]) -> set[str]:
    """Those of `values` that are the numbers of cards the user does not see."""
    values = {value for value in values if value and len(value) <= MAX_VALUE}
    if not values or access.sees_everything(user):
        return set()
    known = IdToken.objects.filter(value__in=values)
    return set(known.exclude(pk__in=access.id_token_numbers_for(user).values("pk"))
               .values_list("value", flat=True))


def shown(user: AbstractBaseUser, value: str, token: IdToken | None) -> str:
    """A session's card number as the user may see it: `token` is the card it names (None:
    unknown to us, a number of no organization here, shown as presented)."""
    if not value or token is None or access.sees_card_number(user, token.organization_id):
        return value
    return masked(value)


def mask_in(data, hidden: set[str]):
    """`data` (a frame's payload: JSON values) with every string that is a hidden card number
    masked, wherever it is: what a card number is called differs by message and version."""
    if not hidden:
        return data
    if isinstance(data, str):
        return masked(data) if data in hidden else data
    if isinstance(data, list):
        return [mask_in(item, hidden) for item in data]
    if isinstance(data, dict):
        return {key: mask_in(item, hidden) for key, item in data.items()}
    return data


def strings_in(data, found: set[str] | None = None) -> set[str]:
    """Every string value in a payload (the candidates for hidden_values)."""
    found = set() if found is None else found
    if isinstance(data, str):
        found.add(data)
    elif isinstance(data, list):
        for item in data:
            strings_in(item, found)
    elif isinstance(data, dict):
        for item in data.values():
            strings_in(item, found)
    return found


# --- agreements and roaming ----------------------------------------------------------------------

def access_grant(user: AbstractBaseUser, organization: Organization, site: Site) -> SiteAccess:
    """Let the organization's cards charge at the site (the caller checked that the user may:
    access.may_manage_site_access)."""
    if organization.pk == site.organization_id:
        raise AccessError(f"{organization} owns {site}: its cards charge there already.")
    try:
        with transaction.atomic():
            agreement = SiteAccess.objects.create(
                organization=organization, site=site,
                created_by=user if user.is_authenticated else None)
            audit.record(user, Action.SITE_ACCESS,
                         f"let the cards of {organization} charge at {site}",
                         target=f"site:{site.pk}",
                         details={"organization": organization.pk, "granted": True})
            id_tokens_changed.send(IdToken)
    except IntegrityError:
        raise AccessError(f"The cards of {organization} charge at {site} already.") from None
    return agreement


def access_revoke(user: AbstractBaseUser, agreement: SiteAccess) -> None:
    with transaction.atomic():
        agreement.delete()
        audit.record(user, Action.SITE_ACCESS,
                     f"ended the cards of {agreement.organization} charging at {agreement.site}",
                     target=f"site:{agreement.site_id}",
                     details={"organization": agreement.organization_id, "granted": False})
        id_tokens_changed.send(IdToken)


POLICY_WORDS = {
    "roaming": ("roaming offered", "roaming withdrawn"),
    "roaming_consent": ("roaming consented to", "roaming consent withdrawn"),
    "one_session_per_card": ("one session per card", "parallel sessions allowed"),
}


def policy_set(user: AbstractBaseUser, organization: Organization, **wanted: bool) -> None:
    """Change how the organization's cards may be used (POLICY_WORDS' fields). Who may set
    which is the caller's check (access.may_set_card_policy)."""
    with transaction.atomic():
        organization = Organization.objects.select_for_update().get(pk=organization.pk)
        changed = {name: value for name, value in wanted.items()
                   if getattr(organization, name) != value}
        if not changed:
            return
        Organization.objects.filter(pk=organization.pk).update(**changed)
        words = ", ".join(POLICY_WORDS[name][0 if value else 1]
                          for name, value in changed.items())
        audit.record(user, Action.CARD_POLICY, f"{organization}: {words}",
                     target=f"organization:{organization.pk}", details=changed)
        id_tokens_changed.send(IdToken)
