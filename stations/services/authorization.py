"""How a charger must treat an ID token: its state, its expiry, whether it charges at this
station's site (accounts.card_use) and whether it is charging elsewhere already."""

from dataclasses import dataclass
from datetime import datetime

from django.contrib.auth.models import AbstractBaseUser

from accounts import access, card_use
from accounts.models import IdToken
from stations import persistence
from stations.models import Station, Transaction

# A token that does not charge at the station's site (each version says it in its own words).
NOT_AT_THIS_SITE = "NotAtThisSite"
# The token is in a transaction at another station, and its organization allows one at a time.
CONCURRENT_TX = "ConcurrentTx"

# Why a remote start is not sent, for a person, by the status the charger would be told.
_REFUSALS = {
    IdToken.Status.BLOCKED: "card {value} is blocked",
    IdToken.Status.EXPIRED: "card {value} has expired",
    IdToken.Status.INVALID: "card {value} is unknown",
    NOT_AT_THIS_SITE: "card {value} does not charge at this station's site",
    CONCURRENT_TX: "card {value} is charging at another station",
}


@dataclass(frozen=True, slots=True)
class Authorization:
    status: str  # IdToken.Status values, CONCURRENT_TX or NOT_AT_THIS_SITE
    expires_at: datetime | None = None
    group: str = ""  # as chargers are told it: IdToken.group_token()
    token: IdToken | None = None  # the card, with its organization; None: unknown


def authorize(station: Station, token_value: str) -> Authorization:
    """One written-out query (persistence.token_with_checks): the database computes the checks
    with the card. Each session authorizes three times (Authorize, start, end)."""
    found = persistence.token_with_checks(station.site_id, station.pk, token_value)
    if found is None:
        return Authorization(IdToken.Status.INVALID)
    token = found.token
    status = token.effective_status()
    if status == IdToken.Status.ACCEPTED:
        organization = token.organization
        if (found.limited_to_sites and not found.allowed_here) or not card_use.admits(
                organization, found.site_admits):
            status = NOT_AT_THIS_SITE
        elif found.charging_elsewhere and (organization is None
                                           or organization.one_session_per_card):
            status = CONCURRENT_TX
    return Authorization(status, token.expires_at, token.group_token(), token)


def remote_start_refusal(station: Station, token_value: str,
                         user: AbstractBaseUser | None) -> str:
    """Why a remote start with this card must not be sent to the station ("" if it may): the
    charger would refuse it (and leave an empty session behind), or the person may not use the
    card. A card the person does not see is refused alike whether it exists or not."""
    if user is not None and not access.sees_everything(user) and not (
            access.id_token_numbers_for(user).filter(value=token_value).exists()):
        return f"card {token_value} is not one of the cards you may start with"
    auth = authorize(station, token_value)
    one_at_a_time = auth.token is not None and (
        auth.token.organization is None or auth.token.organization.one_session_per_card)
    if auth.status == IdToken.Status.ACCEPTED and one_at_a_time and Transaction.objects.filter(
            station=station, id_token=auth.token, state=Transaction.State.ACTIVE).exists():
        return f"card {token_value} is charging at this station already"
    if auth.status == IdToken.Status.ACCEPTED:
        return ""
    return _REFUSALS.get(auth.status, "card {value} is refused").format(value=token_value)
