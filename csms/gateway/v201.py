"""OCPP 2.0.1 adapter: 2.0.1 messages into domain services, domain commands into 2.0.1 calls.

Handlers run in the database thread inside the message's transaction and return the reply
payload; they never wait for the charger (see consumer.py).
"""

import itertools
from decimal import Decimal
from types import SimpleNamespace

from django.conf import settings
from django.utils import timezone

from billing.services import total_cost as billing_total
from csms.gateway.frames import parse_timestamp, utc_timestamp
from csms.gateway.handlers import Context, Registry, data_transfer, notification
from csms.gateway.units import to_domain
from stations import services
from stations.models import StationEvent
from stations.services import Authorization, Sample, TransactionReport, VariableReport

VERSION = "2.0.1"
HANDLERS = Registry()

_KIND = {"Started": "start", "Updated": "update", "Ended": "end"}


def _now() -> str:
    return utc_timestamp(timezone.now())


# The domain's neutral statuses in 2.0.1's words.
_STATUS_WORDS = {services.NOT_AT_THIS_SITE: "NotAtThisLocation"}


def _id_token_info(auth: Authorization) -> dict:
    info: dict = {"status": _STATUS_WORDS.get(auth.status, auth.status)}
    if auth.expires_at:
        info["cacheExpiryDateTime"] = utc_timestamp(auth.expires_at)
    if auth.group:
        info["groupIdToken"] = {"idToken": auth.group, "type": "Central"}
    return info


def _samples(meter_values: list[dict]) -> list[Sample]:
    samples = []
    for meter_value in meter_values:
        timestamp = parse_timestamp(meter_value["timestamp"])
        for sampled in meter_value["sampledValue"]:
            unit_of_measure = sampled.get("unitOfMeasure", {})
            value, unit = to_domain(sampled["value"], unit_of_measure.get("unit", "Wh"),
                                    unit_of_measure.get("multiplier", 0))
            samples.append(Sample(
                timestamp=timestamp, value=value, unit=unit,
                measurand=sampled.get("measurand", services.ENERGY_REGISTER),
                phase=sampled.get("phase", ""), location=sampled.get("location", ""),
                context=sampled.get("context", ""),
            ))
    return samples


@HANDLERS.on("BootNotification")
def bootnotification(ctx: Context, payload: dict) -> dict:
    station = payload["chargingStation"]
    status = services.boot_record(
        ctx.station, vendor=station["vendorName"], model=station["model"],
        serial_number=station.get("serialNumber", ""),
        firmware_version=station.get("firmwareVersion", ""), reason=payload["reason"],
    )
    return {"status": status, "currentTime": _now(),
            "interval": settings.OCPP["HEARTBEAT_INTERVAL"]}


@HANDLERS.on("Heartbeat")
def heartbeat(ctx: Context, payload: dict) -> dict:
    services.station_seen(ctx.station, ctx.batch)
    return {"currentTime": _now()}


@HANDLERS.on("StatusNotification")
def statusnotification(ctx: Context, payload: dict) -> dict:
    services.status_record(
        ctx.station, evse=payload["evseId"], connector=payload["connectorId"],
        status=payload["connectorStatus"], timestamp=parse_timestamp(payload["timestamp"]),
        batch=ctx.batch,
    )
    return {}


@HANDLERS.on("Authorize")
def authorize(ctx: Context, payload: dict) -> dict:
    auth = services.authorize(ctx.station, payload["idToken"]["idToken"])
    return {"idTokenInfo": _id_token_info(auth)}


@HANDLERS.on("TransactionEvent")
def transaction_event(ctx: Context, payload: dict) -> dict:
    # Retries get new message ids: (station, transactionId, seqNo) is the business key.
    info = payload["transactionInfo"]
    evse = payload.get("evse", {})
    token = payload.get("idToken", {}).get("idToken")
    samples = _samples(payload.get("meterValue", []))
    kind = _KIND[payload["eventType"]]
    # The register in a Transaction.Begin / Transaction.End sample is the start / stop reading.
    edge = {"start": "Transaction.Begin", "end": "Transaction.End"}.get(kind)
    readings = [s.value for s in samples if s.context == edge
                and s.measurand == services.ENERGY_REGISTER and not s.phase]
    # A TransactionEvent cannot be rejected: an unknown token is stored and answered Invalid.
    auth = services.authorize(ctx.station, token) if token is not None else None
    report = TransactionReport(
        kind=kind, timestamp=parse_timestamp(payload["timestamp"]),
        transaction_id=info["transactionId"], sequence=payload["seqNo"],
        evse=evse.get("id"), connector=evse.get("connectorId"), id_token=token,
        token=auth.token if auth is not None else None,
        meter_wh=readings[-1] if readings else None,
        stop_reason=info.get("stoppedReason", "Local" if kind == "end" else ""),
        trigger=payload["triggerReason"], offline=payload.get("offline", False),
        samples=samples,
    )
    if kind == "update":  # the common message: stored with the batch
        services.transaction_update(ctx.station, report, ctx.batch)
    else:
        tx, _ = services.transaction_report(ctx.station, report)
    reply = {} if auth is None else {"idTokenInfo": _id_token_info(auth)}
    # The final cost, priced and stored with the end in this transaction (billing's receiver).
    if kind == "end" and (total := billing_total(tx)) is not None:
        reply["totalCost"] = total
    return reply


@HANDLERS.on("MeterValues")
def meter_values(ctx: Context, payload: dict) -> dict:
    services.meter_values_record(ctx.station, evse=payload["evseId"], transaction_id=None,
                                 samples=_samples(payload["meterValue"]), batch=ctx.batch)
    return {}


@HANDLERS.on("NotifyReport")
def notify_report(ctx: Context, payload: dict) -> dict:
    reports = []
    for item in payload.get("reportData", []):
        component, variable = item["component"], item["variable"]
        evse = component.get("evse", {})
        for attribute in item["variableAttribute"]:
            reports.append(VariableReport(
                component=component["name"], component_instance=component.get("instance", ""),
                evse=evse.get("id"), connector=evse.get("connectorId"),
                variable=variable["name"], variable_instance=variable.get("instance", ""),
                attribute_type=attribute.get("type", "Actual"),
                value=attribute.get("value", ""), mutability=attribute.get("mutability", ""),
            ))
        # A limit the charger declares (e.g. how many entries its local list holds).
        limit = item.get("variableCharacteristics", {}).get("maxLimit")
        if limit is not None:
            reports.append(VariableReport(
                component=component["name"], component_instance=component.get("instance", ""),
                evse=evse.get("id"), connector=evse.get("connectorId"),
                variable=variable["name"], variable_instance=variable.get("instance", ""),
                attribute_type="MaxLimit", value=str(limit)))
    services.device_variables_record(ctx.station, reports)
    return {}


@HANDLERS.on("NotifyEvent")
def notify_event(ctx: Context, payload: dict) -> dict:
    for event in payload["eventData"]:
        name = f"{event['component']['name']}.{event['variable']['name']}: {event['trigger']}"
        services.station_event_record(ctx.station, StationEvent.Kind.MONITORING, name, event,
                                      parse_timestamp(event["timestamp"]))
    return {}


HANDLERS["DataTransfer"] = data_transfer
HANDLERS["FirmwareStatusNotification"] = notification(StationEvent.Kind.FIRMWARE)
HANDLERS["LogStatusNotification"] = notification(StationEvent.Kind.DIAGNOSTICS)
HANDLERS["SecurityEventNotification"] = notification(StationEvent.Kind.SECURITY, "type")

# remoteStartId pairs a RequestStartTransaction with the TransactionEvent it causes.
_remote_start_ids = itertools.count(int(timezone.now().timestamp()) % 1_000_000_000)


def _remote_start(evse: int, id_token: str) -> tuple[str, dict]:
    return "RequestStartTransaction", {
        "evseId": evse, "remoteStartId": next(_remote_start_ids),
        "idToken": {"idToken": id_token, "type": "Central"},
    }


def _remote_stop(transaction_id: str) -> tuple[str, dict]:
    return "RequestStopTransaction", {"transactionId": transaction_id}


def _reset(hard: bool) -> tuple[str, dict]:
    return "Reset", {"type": "Immediate" if hard else "OnIdle"}


def _unlock(evse: int, connector: int) -> tuple[str, dict]:
    return "UnlockConnector", {"evseId": evse, "connectorId": connector}


def _availability_change(evse: int, operative: bool) -> tuple[str, dict]:
    payload: dict = {"operationalStatus": "Operative" if operative else "Inoperative"}
    if evse:
        payload["evse"] = {"id": evse}
    return "ChangeAvailability", payload


def _message_trigger(message: str, evse: int | None) -> tuple[str, dict]:
    payload: dict = {"requestedMessage": message}
    if evse is not None:
        payload["evse"] = {"id": evse}
    return "TriggerMessage", payload


def _cost_update(transaction_id: str, total: Decimal) -> tuple[str, dict]:
    """The running cost of a session, including taxes, for the charger's display."""
    return "CostUpdated", {"totalCost": total, "transactionId": transaction_id}


# Local authorization lists: tokens of up to 36 characters; list limits are device-model
# variables of LocalAuthListCtrlr (Entries' maxLimit comes with a NotifyReport).
ID_TOKEN_MAX_LENGTH = 36
LOCAL_LIST_LIMITS = {"entries": ("LocalAuthListCtrlr", "Entries", "MaxLimit"),
                     "per_message": ("LocalAuthListCtrlr", "ItemsPerMessage", "Actual")}


def _local_list_send(version: int, full: bool, entries: dict) -> tuple[str, dict]:
    """entries: token value → {"status", "expires_at" (ISO), "group", "type"}, None removes."""
    items = []
    for value, entry in entries.items():
        item: dict = {"idToken": {"idToken": value,
                                  "type": (entry or {}).get("type") or "ISO14443"}}
        if entry is not None:
            expires = entry["expires_at"]
            item["idTokenInfo"] = _id_token_info(Authorization(
                entry["status"], parse_timestamp(expires) if expires else None, entry["group"]))
        items.append(item)
    payload: dict = {"versionNumber": version, "updateType": "Full" if full else "Differential"}
    if items:  # the schema wants at least one entry when the list is given
        payload["localAuthorizationList"] = items
    return "SendLocalList", payload


def _local_list_limits_query() -> tuple[str, dict]:
    return "GetVariables", {"getVariableData": [
        {"component": {"name": "LocalAuthListCtrlr"}, "variable": {"name": "ItemsPerMessage"}},
    ]}


def _variables(action: str, response: dict) -> list[VariableReport]:
    """Variables a GetVariables answer reported."""
    if action != "GetVariables":
        return []
    return [VariableReport(component=item["component"]["name"],
                           component_instance=item["component"].get("instance", ""),
                           variable=item["variable"]["name"],
                           variable_instance=item["variable"].get("instance", ""),
                           attribute_type=item.get("attributeType", "Actual"),
                           value=item.get("attributeValue", ""))
            for item in response.get("getVariableResult", [])
            if item["attributeStatus"] == "Accepted"]


def _local_list_version(action: str, response: dict) -> int | None:
    return response["versionNumber"] if action == "GetLocalListVersion" else None


commands = SimpleNamespace(
    remote_start=_remote_start, remote_stop=_remote_stop, reset=_reset, unlock=_unlock,
    availability_change=_availability_change, message_trigger=_message_trigger,
    cost_update=_cost_update, local_list_send=_local_list_send,
    local_list_version_get=lambda: ("GetLocalListVersion", {}),
    cache_clear=lambda: ("ClearCache", {}), local_list_limits_query=_local_list_limits_query,
)
# What the domain reads out of the charger's answers to our calls.
replies = SimpleNamespace(variables=_variables, local_list_version=_local_list_version)
