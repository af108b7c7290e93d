"""OCPP 1.6 adapter: 1.6 messages into domain services, domain commands into 1.6 calls.

Handlers run in the database thread inside the message's transaction and return the reply
payload; they never wait for the charger (see consumer.py).
"""

from decimal import Decimal
from types import SimpleNamespace

from django.conf import settings
from django.utils import timezone

from csms.gateway.frames import parse_timestamp, utc_timestamp
from csms.gateway.handlers import Context, Registry, data_transfer, notification
from csms.gateway.units import to_domain
from stations import services
from stations.models import Connector, StationEvent, TransactionMessage
from stations.services import Authorization, Sample, TransactionReport, VariableReport

VERSION = "1.6"
HANDLERS = Registry()

# 1.6 reports what the car is doing; the domain keeps "occupied" and the charger's word as detail.
_OCCUPIED = {"Preparing", "Charging", "SuspendedEV", "SuspendedEVSE", "Finishing"}


def _now() -> str:
    return utc_timestamp(timezone.now())


# 1.6 has no word for a token refused at this site (2.0.1 NotAtThisLocation): it is Invalid here.
_STATUSES = {"Accepted", "Blocked", "Expired", "Invalid", "ConcurrentTx"}


def _id_tag_info(auth: Authorization) -> dict:
    info: dict = {"status": auth.status if auth.status in _STATUSES else "Invalid"}
    if auth.expires_at:
        info["expiryDate"] = utc_timestamp(auth.expires_at)
    if auth.group:
        info["parentIdTag"] = auth.group[:20]
    return info


def _samples(meter_values: list[dict]) -> list[services.Sample]:
    samples = []
    for meter_value in meter_values:
        timestamp = parse_timestamp(meter_value["timestamp"])
        for sampled in meter_value["sampledValue"]:
            if sampled.get("format") == "SignedData":
                continue  # a signed blob, not a number; kept in the message log
            value, unit = to_domain(sampled["value"], sampled.get("unit", "Wh"))
            samples.append(Sample(
                timestamp=timestamp, value=value, unit=unit,
                measurand=sampled.get("measurand", services.ENERGY_REGISTER),
                phase=sampled.get("phase", ""), location=sampled.get("location", ""),
                context=sampled.get("context", ""),
            ))
    return samples


@HANDLERS.on("BootNotification")
def bootnotification(ctx: Context, payload: dict) -> dict:
    status = services.boot_record(
        ctx.station, vendor=payload["chargePointVendor"], model=payload["chargePointModel"],
        serial_number=payload.get("chargePointSerialNumber")
        or payload.get("chargeBoxSerialNumber", ""),
        firmware_version=payload.get("firmwareVersion", ""),
    )
    return {"status": status, "currentTime": _now(),
            "interval": settings.OCPP["HEARTBEAT_INTERVAL"]}


@HANDLERS.on("Heartbeat")
def heartbeat(ctx: Context, payload: dict) -> dict:
    services.station_seen(ctx.station, ctx.batch)
    return {"currentTime": _now()}


@HANDLERS.on("StatusNotification")
def statusnotification(ctx: Context, payload: dict) -> dict:
    reported = payload["status"]
    status = Connector.Status.OCCUPIED if reported in _OCCUPIED else reported
    connector = payload["connectorId"]
    services.status_record(
        ctx.station, evse=connector, connector=1 if connector else None, status=status,
        detail=reported if reported != status else "", error_code=payload["errorCode"],
        info=payload.get("info", ""),
        timestamp=parse_timestamp(payload["timestamp"]) if "timestamp" in payload else None,
        batch=ctx.batch,
    )
    return {}


@HANDLERS.on("Authorize")
def authorize(ctx: Context, payload: dict) -> dict:
    return {"idTagInfo": _id_tag_info(services.authorize(ctx.station, payload["idTag"]))}


@HANDLERS.on("StartTransaction")
def start_transaction(ctx: Context, payload: dict) -> dict:
    # 1.6 message ids are unique per connection only, and a start carries no id of the
    # charger's: its content is the business key that makes a retry recognisable.
    start_key = "|".join(str(payload[key]) for key in
                         ("connectorId", "idTag", "timestamp", "meterStart"))
    auth = services.authorize(ctx.station, payload["idTag"])
    tx, _ = services.transaction_report(ctx.station, TransactionReport(
        kind=TransactionMessage.Kind.START, timestamp=parse_timestamp(payload["timestamp"]),
        start_key=start_key, evse=payload["connectorId"], connector=1,
        id_token=payload["idTag"], token=auth.token,
        meter_wh=to_domain(payload["meterStart"], "Wh")[0],
    ))
    return {"transactionId": int(tx.transaction_id), "idTagInfo": _id_tag_info(auth)}


@HANDLERS.on("StopTransaction")
def stop_transaction(ctx: Context, payload: dict) -> dict:
    services.transaction_report(ctx.station, TransactionReport(
        kind=TransactionMessage.Kind.END, timestamp=parse_timestamp(payload["timestamp"]),
        transaction_id=str(payload["transactionId"]), id_token=payload.get("idTag"),
        meter_wh=to_domain(payload["meterStop"], "Wh")[0],
        stop_reason=payload.get("reason", "Local"),
        samples=_samples(payload.get("transactionData", [])),
    ))
    if "idTag" in payload:
        return {"idTagInfo": _id_tag_info(services.authorize(ctx.station, payload["idTag"]))}
    return {}


@HANDLERS.on("MeterValues")
def meter_values(ctx: Context, payload: dict) -> dict:
    transaction_id = payload.get("transactionId")
    services.meter_values_record(
        ctx.station, evse=payload["connectorId"],
        transaction_id=str(transaction_id) if transaction_id is not None else None,
        samples=_samples(payload["meterValue"]), batch=ctx.batch,
    )
    return {}


HANDLERS["DataTransfer"] = data_transfer
HANDLERS["FirmwareStatusNotification"] = notification(StationEvent.Kind.FIRMWARE)
HANDLERS["SignedFirmwareStatusNotification"] = notification(StationEvent.Kind.FIRMWARE)
HANDLERS["DiagnosticsStatusNotification"] = notification(StationEvent.Kind.DIAGNOSTICS)
HANDLERS["LogStatusNotification"] = notification(StationEvent.Kind.DIAGNOSTICS)
HANDLERS["SecurityEventNotification"] = notification(StationEvent.Kind.SECURITY, "type")


def _remote_start(evse: int, id_token: str) -> tuple[str, dict]:
    if len(id_token) > 20:
        raise ValueError(f"OCPP 1.6 ID tags have at most 20 characters; {id_token!r} has more")
    return "RemoteStartTransaction", {"connectorId": evse, "idTag": id_token}


def _remote_stop(transaction_id: str) -> tuple[str, dict]:
    if not transaction_id.isdigit():
        raise ValueError(f"{transaction_id!r} is not an OCPP 1.6 transaction id")
    return "RemoteStopTransaction", {"transactionId": int(transaction_id)}


def _reset(hard: bool) -> tuple[str, dict]:
    return "Reset", {"type": "Hard" if hard else "Soft"}


def _unlock(evse: int, connector: int) -> tuple[str, dict]:
    return "UnlockConnector", {"connectorId": evse}


def _availability_change(evse: int, operative: bool) -> tuple[str, dict]:
    return "ChangeAvailability", {"connectorId": evse,
                                  "type": "Operative" if operative else "Inoperative"}


def _message_trigger(message: str, evse: int | None) -> tuple[str, dict]:
    payload: dict = {"requestedMessage": message}
    if evse is not None:
        payload["connectorId"] = evse
    return "TriggerMessage", payload


def _cost_update(transaction_id: str, total: Decimal) -> tuple[str, dict]:
    raise ValueError("OCPP 1.6 has no message for a session's running cost")


# Local authorization lists: a 1.6 charger sees at most 20 characters of a token, and reports
# its list limits as configuration keys.
ID_TOKEN_MAX_LENGTH = 20
LOCAL_LIST_LIMITS = {"entries": ("", "LocalAuthListMaxLength", "Actual"),
                     "per_message": ("", "SendLocalListMaxLength", "Actual")}


def _local_list_send(version: int, full: bool, entries: dict) -> tuple[str, dict]:
    """entries: token value → {"status", "expires_at" (ISO), "group", "type"}, None removes."""
    items = []
    for value, entry in entries.items():
        item: dict = {"idTag": value}
        if entry is not None:
            expires = entry["expires_at"]
            item["idTagInfo"] = _id_tag_info(Authorization(
                entry["status"], parse_timestamp(expires) if expires else None, entry["group"]))
        items.append(item)
    payload: dict = {"listVersion": version, "updateType": "Full" if full else "Differential"}
    if items:
        payload["localAuthorizationList"] = items
    return "SendLocalList", payload


def _local_list_limits_query() -> tuple[str, dict]:
    return "GetConfiguration", {"key": [key for _, key, _ in LOCAL_LIST_LIMITS.values()]}


def _variables(action: str, response: dict) -> list[VariableReport]:
    """Configuration keys a GetConfiguration answer reported, as device variables."""
    if action != "GetConfiguration":
        return []
    return [VariableReport(component="", variable=item["key"], value=item.get("value", ""),
                           mutability="ReadOnly" if item.get("readonly") else "ReadWrite")
            for item in response.get("configurationKey", [])]


def _local_list_version(action: str, response: dict) -> int | None:
    return response["listVersion"] if action == "GetLocalListVersion" else None


commands = SimpleNamespace(
    remote_start=_remote_start, remote_stop=_remote_stop, reset=_reset, unlock=_unlock,
    availability_change=_availability_change, message_trigger=_message_trigger,
    cost_update=_cost_update, local_list_send=_local_list_send,
    local_list_version_get=lambda: ("GetLocalListVersion", {}),
    cache_clear=lambda: ("ClearCache", {}), local_list_limits_query=_local_list_limits_query,
)
# What the domain reads out of the charger's answers to our calls.
replies = SimpleNamespace(variables=_variables, local_list_version=_local_list_version)
