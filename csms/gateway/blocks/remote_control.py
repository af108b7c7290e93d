"""Remote control (1.6 Core and RemoteTrigger; 2.0.1 F): starting and stopping sessions,
unlocking a connector, asking for a message now."""

import itertools

from django.utils import timezone
from ocpp.v16.enums import Action as V16
from ocpp.v201.enums import Action as V201
from ocpp.v201.enums import IdTokenEnumType as IdTokenType

from csms.gateway.table import TABLE, Direction, Version
from stations.models import Call, Station
from stations.services import commands

# remoteStartId pairs a RequestStartTransaction with the TransactionEvent it causes.
_remote_start_ids = itertools.count(int(timezone.now().timestamp()) % 1_000_000_000)


@TABLE.builds(Version.V16, V16.remote_start_transaction, commands.RemoteStart)
def remote_start_16(command: commands.RemoteStart) -> dict:
    if len(command.id_token) > 20:
        raise commands.CommandError(
            f"OCPP 1.6 ID tags have at most 20 characters; {command.id_token!r} has more")
    return {"connectorId": command.evse, "idTag": command.id_token}


@TABLE.builds(Version.V201, V201.request_start_transaction, commands.RemoteStart)
def remote_start_201(command: commands.RemoteStart) -> dict:
    return {"evseId": command.evse, "remoteStartId": next(_remote_start_ids),
            "idToken": {"idToken": command.id_token, "type": IdTokenType.central}}


def remote_start_token(station: Station, remote_start_id: int) -> str | None:
    """The card of the RequestStartTransaction that gave the station `remote_start_id`: a
    transaction it started may name only the id (E02: the idToken is optional in its events)."""
    payload = (Call.objects.filter(station=station, action=V201.request_start_transaction,
                                   payload__remoteStartId=remote_start_id)
               .order_by("-created_at").values_list("payload", flat=True).first())
    return payload["idToken"]["idToken"] if payload else None


@TABLE.builds(Version.V16, V16.remote_stop_transaction, commands.RemoteStop)
def remote_stop_16(command: commands.RemoteStop) -> dict:
    if not command.transaction_id.isdigit():
        raise commands.CommandError(
            f"{command.transaction_id!r} is not an OCPP 1.6 transaction id")
    return {"transactionId": int(command.transaction_id)}


@TABLE.builds(Version.V201, V201.request_stop_transaction, commands.RemoteStop)
def remote_stop_201(command: commands.RemoteStop) -> dict:
    return {"transactionId": command.transaction_id}


@TABLE.builds(Version.V16, V16.unlock_connector, commands.Unlock)
def unlock_16(command: commands.Unlock) -> dict:
    return {"connectorId": command.evse}


@TABLE.builds(Version.V201, V201.unlock_connector, commands.Unlock)
def unlock_201(command: commands.Unlock) -> dict:
    return {"evseId": command.evse, "connectorId": command.connector}


@TABLE.builds(Version.V16, V16.trigger_message, commands.MessageTrigger)
def message_trigger_16(command: commands.MessageTrigger) -> dict:
    payload: dict = {"requestedMessage": command.message}
    if command.evse is not None:
        payload["connectorId"] = command.evse
    return payload


@TABLE.builds(Version.V201, V201.trigger_message, commands.MessageTrigger)
def message_trigger_201(command: commands.MessageTrigger) -> dict:
    payload: dict = {"requestedMessage": command.message}
    if command.evse is not None:
        payload["evse"] = {"id": command.evse}
    return payload


TABLE.unsupported(Version.V16, Direction.TO_CHARGER, V16.extended_trigger_message,
                  block=__name__, note="the Security Whitepaper's triggers (its messages are "
                  "the security block's)")
TABLE.not_offered(Version.V21, like=Version.V201, block=__name__)
