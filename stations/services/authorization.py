"""How a charger must treat an ID token: its state, its expiry, where it may charge and whether
it (or its group) is charging elsewhere already."""

from dataclasses import dataclass
from datetime import datetime

from accounts.models import IdToken
from stations import persistence
from stations.models import Station

# A token limited to other sites than the station's (each version says it in its own words).
NOT_AT_THIS_SITE = "NotAtThisSite"
# The token, or another of its group, is in a transaction at another station.
CONCURRENT_TX = "ConcurrentTx"


@dataclass(frozen=True, slots=True)
class Authorization:
    status: str  # IdToken.Status values, CONCURRENT_TX or NOT_AT_THIS_SITE
    expires_at: datetime | None = None
    group: str = ""
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
        if found.limited_to_sites and not found.allowed_here:
            status = NOT_AT_THIS_SITE
        elif found.charging_elsewhere:
            status = CONCURRENT_TX
    return Authorization(status, token.expires_at, token.group, token)
