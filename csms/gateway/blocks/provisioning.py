"""Provisioning (1.6 Core: BootNotification, Reset, configuration; 2.0.1 B: booting, the device
model, resets, network profiles): who a station is, what it reports of itself, restarting it,
and its new password (1.6 Security Whitepaper, 2.0.1 A01) said as a configuration change."""

import logging

from django.conf import settings
from ocpp.v16.enums import Action as V16
from ocpp.v16.enums import ConfigurationKey, ConfigurationStatus
from ocpp.v16.enums import ResetType as ResetType16
from ocpp.v201.enums import Action as V201
from ocpp.v201.enums import (
    ControllerComponentName,
    SecurityCtrlrVariableName,
    SetVariableStatusEnumType,
)
from ocpp.v201.enums import ResetEnumType as ResetType201

from csms.gateway.frames import utc_now
from csms.gateway.table import (
    TABLE,
    V201_AND_V21,
    Context,
    Direction,
    ReplyContext,
    Version,
)
from stations.models import Call
from stations.records import VariableReport
from stations.services import commands, device, registration

DEVICE_MODEL = "configuration and device model management: GetConfiguration for a person, " \
    "base reports and variables"

log = logging.getLogger(__name__)

# Answers saying the charger uses the new value, at once or from its next reboot.
_CONFIGURATION_TAKEN = (ConfigurationStatus.accepted, ConfigurationStatus.reboot_required)
_VARIABLE_TAKEN = (SetVariableStatusEnumType.accepted, SetVariableStatusEnumType.reboot_required)
# 1.6 Security Whitepaper: an AuthorizationKey is 16 to 20 bytes, hex-encoded in the message.
AUTHORIZATION_KEY_BYTES = range(16, 21)

# Requests of many keys or variables go in parts no larger than the station reported it takes:
# 1.6 GetConfigurationMaxKeys; 2.0.1 DeviceDataCtrlr's ItemsPerMessage and BytesPerMessage,
# instance by message (2.0.1 B06 and B05).
TABLE.declare(Version.V16, message_parts={
    V16.get_configuration: commands.MessageParts(
        items="key", answers=("configurationKey", "unknownKey"),
        items_limit=("", "GetConfigurationMaxKeys", ""))})
TABLE.declare(Version.V201, message_parts={
    action: commands.MessageParts(
        items=items, answers=(answers,),
        items_limit=("DeviceDataCtrlr", "ItemsPerMessage", action),
        bytes_limit=("DeviceDataCtrlr", "BytesPerMessage", action))
    for action, items, answers in (
        (V201.get_variables, "getVariableData", "getVariableResult"),
        (V201.set_variables, "setVariableData", "setVariableResult"))})


@TABLE.handles(Version.V16, V16.boot_notification, before_acceptance=True)
def boot_notification_16(ctx: Context, payload: dict) -> dict:
    status = registration.boot_record(
        ctx.station, vendor=payload["chargePointVendor"], model=payload["chargePointModel"],
        serial_number=payload.get("chargePointSerialNumber")
        or payload.get("chargeBoxSerialNumber", ""),
        firmware_version=payload.get("firmwareVersion", ""),
    )
    return {"status": status, "currentTime": utc_now(),
            "interval": settings.OCPP["HEARTBEAT_INTERVAL"]}


@TABLE.handles(Version.V201, V201.boot_notification, before_acceptance=True)
def boot_notification_201(ctx: Context, payload: dict) -> dict:
    station = payload["chargingStation"]
    status = registration.boot_record(
        ctx.station, vendor=station["vendorName"], model=station["model"],
        serial_number=station.get("serialNumber", ""),
        firmware_version=station.get("firmwareVersion", ""), reason=payload["reason"],
    )
    return {"status": status, "currentTime": utc_now(),
            "interval": settings.OCPP["HEARTBEAT_INTERVAL"]}


@TABLE.builds(Version.V16, V16.reset, commands.Reset)
def reset_16(command: commands.Reset) -> dict:
    return {"type": ResetType16.hard if command.hard else ResetType16.soft}


@TABLE.builds(Version.V201, V201.reset, commands.Reset)
def reset_201(command: commands.Reset) -> dict:
    return {"type": ResetType201.immediate if command.hard else ResetType201.on_idle}


@TABLE.reads(Version.V16, V16.get_configuration)
def configuration_read_16(ctx: ReplyContext, payload: dict) -> str:
    """The configuration keys a charger reported, kept as its device variables."""
    device.device_variables_record(ctx.station, [
        VariableReport(component="", variable=item["key"], value=item.get("value", ""),
                       mutability="ReadOnly" if item.get("readonly") else "ReadWrite")
        for item in payload.get("configurationKey", [])])
    return Call.Status.ACCEPTED


@TABLE.reads(Version.V201, V201.get_variables)
def variables_read_201(ctx: ReplyContext, payload: dict) -> str:
    """The variables a charger reported (those it could read), kept as its device model."""
    device.device_variables_record(ctx.station, [
        VariableReport(component=item["component"]["name"],
                       component_instance=item["component"].get("instance", ""),
                       variable=item["variable"]["name"],
                       variable_instance=item["variable"].get("instance", ""),
                       attribute_type=item.get("attributeType", "Actual"),
                       value=item.get("attributeValue", ""))
        for item in payload.get("getVariableResult", [])
        if item["attributeStatus"] == "Accepted"])
    return Call.Status.ACCEPTED


@TABLE.handles(Version.V201, V201.notify_report)
def notify_report_201(ctx: Context, payload: dict) -> dict:
    reports = []
    for item in payload.get("reportData", []):
        component, variable = item["component"], item["variable"]
        evse = component.get("evse", {})
        where = {"component": component["name"],
                 "component_instance": component.get("instance", ""),
                 "evse": evse.get("id"), "connector": evse.get("connectorId"),
                 "variable": variable["name"], "variable_instance": variable.get("instance", "")}
        for attribute in item["variableAttribute"]:
            reports.append(VariableReport(
                **where, attribute_type=attribute.get("type", "Actual"),
                value=attribute.get("value", ""), mutability=attribute.get("mutability", "")))
        # A limit the charger declares (e.g. how many entries its local list holds).
        limit = item.get("variableCharacteristics", {}).get("maxLimit")
        if limit is not None:
            reports.append(VariableReport(**where, attribute_type="MaxLimit", value=str(limit)))
    device.device_variables_record(ctx.station, reports)
    return {}


@TABLE.builds(Version.V16, V16.change_configuration, commands.PasswordChange)
def password_change_16(command: commands.PasswordChange) -> dict:
    return {"key": ConfigurationKey.authorization_key.value,
            "value": command.password.encode().hex()}


@TABLE.reads(Version.V16, V16.change_configuration)
def configuration_change_read_16(ctx: ReplyContext, payload: dict) -> str:
    """Whether the charger takes the new value; an AuthorizationKey it takes is its password
    from now on, whoever asked (a person's raw call too)."""
    if payload["status"] not in _CONFIGURATION_TAKEN:
        return Call.Status.REJECTED
    if ctx.request.get("key") == ConfigurationKey.authorization_key:
        password = _authorization_key_password(ctx.request.get("value", ""))
        if password is None:
            log.warning("%s took an AuthorizationKey that is not 16 to 20 bytes in hex: its "
                        "password here is unchanged", ctx.station.pk)
        else:
            registration.station_password_adopt(ctx.station, password)
    return Call.Status.ACCEPTED


def _authorization_key_password(value: str) -> str | None:
    """The password an AuthorizationKey's value encodes; None when it encodes none."""
    try:
        raw = bytes.fromhex(value)
        password = raw.decode()
    except ValueError:  # not hex, or bytes a Basic auth header cannot carry as text
        return None
    return password if len(raw) in AUTHORIZATION_KEY_BYTES else None


@TABLE.builds(Version.V201, V201.set_variables, commands.PasswordChange)
def password_change_201(command: commands.PasswordChange) -> dict:
    return {"setVariableData": [{
        "component": {"name": ControllerComponentName.security_ctrlr.value},
        "variable": {"name": SecurityCtrlrVariableName.basic_auth_password.value},
        "attributeValue": command.password}]}


def _is_password(item: dict) -> bool:
    return (item["component"]["name"] == ControllerComponentName.security_ctrlr
            and item["variable"]["name"] == SecurityCtrlrVariableName.basic_auth_password)


@TABLE.reads(Version.V201, V201.set_variables)
def variables_set_read_201(ctx: ReplyContext, payload: dict) -> str:
    """Accepted when the charger takes every variable; a BasicAuthPassword it takes is its
    password from now on, whoever asked (a person's raw call too)."""
    results = payload["setVariableResult"]
    for result in results:
        if result["attributeStatus"] in _VARIABLE_TAKEN and _is_password(result):
            password = next((item["attributeValue"] for item in ctx.request["setVariableData"]
                             if _is_password(item)), None)
            if password is not None:
                registration.station_password_adopt(ctx.station, password)
    taken = all(result["attributeStatus"] in _VARIABLE_TAKEN for result in results)
    return Call.Status.ACCEPTED if taken else Call.Status.REJECTED


TABLE.unsupported(V201_AND_V21, Direction.TO_CHARGER, V201.get_base_report, V201.get_report,
                  V201.set_network_profile, block=__name__, note=DEVICE_MODEL)

TABLE.not_offered(Version.V21, like=Version.V201, block=__name__)
