"""Local authorization list management (1.6 LocalAuthListManagement; 2.0.1 D): the ID tokens a
charger holds for when it is offline, sent and checked in each version's words. What a station
should hold and when it is sent is the domain's (stations/services/local_lists.py)."""

from ocpp.v16.enums import Action as V16
from ocpp.v16.enums import UpdateStatus as UpdateStatus16
from ocpp.v16.enums import UpdateType
from ocpp.v201.enums import Action as V201
from ocpp.v201.enums import IdTokenEnumType as IdTokenType
from ocpp.v201.enums import SendLocalListStatusEnumType as UpdateStatus201

from csms.gateway.blocks.authorization import id_tag_info, id_token_info
from csms.gateway.frames import parse_timestamp
from csms.gateway.table import TABLE, ReplyContext, Version
from stations.models import Call
from stations.services import local_lists
from stations.services.authorization import Authorization
from stations.services.local_lists import (
    Entry,
    LocalListLimitsQuery,
    LocalListSend,
    LocalListVersionQuery,
    PushAnswer,
)

# Where each version reports its list's limits: 1.6 configuration keys; 2.0.1 variables of
# LocalAuthListCtrlr (Entries' maxLimit comes with a NotifyReport).
TABLE.declare(Version.V16, local_list_limits={
    "entries": ("", "LocalAuthListMaxLength", "Actual"),
    "per_message": ("", "SendLocalListMaxLength", "Actual")})
TABLE.declare(Version.V201, local_list_limits={
    "entries": ("LocalAuthListCtrlr", "Entries", "MaxLimit"),
    "per_message": ("LocalAuthListCtrlr", "ItemsPerMessage", "Actual")})


def _authorization(entry: Entry) -> Authorization:
    expires = entry["expires_at"]
    return Authorization(entry["status"], parse_timestamp(expires) if expires else None,
                         entry["group"])


@TABLE.builds(Version.V16, V16.send_local_list, LocalListSend)
def local_list_send_16(command: LocalListSend) -> dict:
    items = []
    for value, entry in command.entries.items():
        item: dict = {"idTag": value}
        if entry is not None:
            item["idTagInfo"] = id_tag_info(_authorization(entry))
        items.append(item)
    payload: dict = {"listVersion": command.version,
                     "updateType": UpdateType.full if command.full else UpdateType.differential}
    if items:
        payload["localAuthorizationList"] = items
    return payload


@TABLE.builds(Version.V201, V201.send_local_list, LocalListSend)
def local_list_send_201(command: LocalListSend) -> dict:
    items = []
    for value, entry in command.entries.items():
        item: dict = {"idToken": {"idToken": value,
                                  "type": (entry or {}).get("type") or IdTokenType.iso14443}}
        if entry is not None:
            item["idTokenInfo"] = id_token_info(_authorization(entry))
        items.append(item)
    payload: dict = {"versionNumber": command.version,
                     "updateType": UpdateType.full if command.full else UpdateType.differential}
    if items:  # the schema wants at least one entry when the list is given
        payload["localAuthorizationList"] = items
    return payload


_ANSWERS = {UpdateStatus16.accepted: PushAnswer.ACCEPTED,
            UpdateStatus16.version_mismatch: PushAnswer.VERSION_MISMATCH,
            UpdateStatus16.not_supported: PushAnswer.NOT_SUPPORTED,
            UpdateStatus201.failed: PushAnswer.FAILED}


@TABLE.reads((Version.V16, Version.V201), V16.send_local_list)
def local_list_send_read(ctx: ReplyContext, payload: dict) -> str:
    """Both versions answer Accepted, Failed or VersionMismatch; 1.6 also NotSupported."""
    answer = _ANSWERS.get(payload["status"], PushAnswer.FAILED)
    local_lists.push_answered(ctx.call_id, answer)
    return Call.Status.ACCEPTED if answer == PushAnswer.ACCEPTED else Call.Status.REJECTED


@TABLE.builds((Version.V16, Version.V201), V16.get_local_list_version, LocalListVersionQuery)
def local_list_version_query(command: LocalListVersionQuery) -> dict:
    return {}


@TABLE.reads(Version.V16, V16.get_local_list_version)
def local_list_version_read_16(ctx: ReplyContext, payload: dict) -> str:
    local_lists.version_reported(ctx.station, payload["listVersion"])
    return Call.Status.ACCEPTED


@TABLE.reads(Version.V201, V201.get_local_list_version)
def local_list_version_read_201(ctx: ReplyContext, payload: dict) -> str:
    local_lists.version_reported(ctx.station, payload["versionNumber"])
    return Call.Status.ACCEPTED


@TABLE.builds(Version.V16, V16.get_configuration, LocalListLimitsQuery)
def local_list_limits_query_16(command: LocalListLimitsQuery) -> dict:
    return {"key": ["LocalAuthListMaxLength", "SendLocalListMaxLength"]}


@TABLE.builds(Version.V201, V201.get_variables, LocalListLimitsQuery)
def local_list_limits_query_201(command: LocalListLimitsQuery) -> dict:
    return {"getVariableData": [
        {"component": {"name": "LocalAuthListCtrlr"}, "variable": {"name": "ItemsPerMessage"}},
    ]}


TABLE.not_offered(Version.V21, like=Version.V201, block=__name__)
