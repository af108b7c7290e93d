"""Authorization (1.6 Core: Authorize, ClearCache; 2.0.1 C): how a charger must treat the ID
token a driver presents, in each version's words."""

from ocpp.v16.enums import Action as V16
from ocpp.v16.enums import AuthorizationStatus as Status16
from ocpp.v201.enums import Action as V201
from ocpp.v201.enums import AuthorizationStatusEnumType as Status201
from ocpp.v201.enums import IdTokenEnumType as IdTokenType

from csms.gateway.frames import utc_timestamp
from csms.gateway.table import TABLE, Context, Version
from stations.services.authorization import NOT_AT_THIS_SITE, Authorization, authorize
from stations.services.local_lists import CacheClear

# The longest token a charger presents: 1.6 idTag is CiString20, 2.0.1 idToken 36 characters.
TABLE.declare(Version.V16, id_token_max_length=20)
TABLE.declare(Version.V201, id_token_max_length=36)

# 1.6 has no word for a token refused at this site (2.0.1 NotAtThisLocation): it is Invalid here.
_STATUSES_16 = set(Status16)
_STATUS_WORDS_201 = {NOT_AT_THIS_SITE: Status201.not_at_this_location}


def id_tag_info(auth: Authorization) -> dict:
    """1.6 IdTagInfo."""
    info: dict = {"status": auth.status if auth.status in _STATUSES_16 else Status16.invalid}
    if auth.expires_at:
        info["expiryDate"] = utc_timestamp(auth.expires_at)
    if auth.group:
        info["parentIdTag"] = auth.group[:20]
    return info


def id_token_info(auth: Authorization) -> dict:
    """2.0.1 IdTokenInfoType."""
    info: dict = {"status": _STATUS_WORDS_201.get(auth.status, auth.status)}
    if auth.expires_at:
        info["cacheExpiryDateTime"] = utc_timestamp(auth.expires_at)
    if auth.group:
        info["groupIdToken"] = {"idToken": auth.group, "type": IdTokenType.central}
    return info


@TABLE.handles(Version.V16, V16.authorize)
def authorize_16(ctx: Context, payload: dict) -> dict:
    return {"idTagInfo": id_tag_info(authorize(ctx.station, payload["idTag"]))}


@TABLE.handles(Version.V201, V201.authorize)
def authorize_201(ctx: Context, payload: dict) -> dict:
    return {"idTokenInfo": id_token_info(authorize(ctx.station, payload["idToken"]["idToken"]))}


@TABLE.builds((Version.V16, Version.V201), V16.clear_cache, CacheClear)
def cache_clear(command: CacheClear) -> dict:
    return {}


TABLE.not_offered(Version.V21, like=Version.V201, block=__name__)
