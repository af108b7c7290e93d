"""A simulated OCPP 2.0.1 charging station: its messages and its answers to the CSMS's CALLs.

In 2.0.1 the station names its transactions itself, and a session is one TransactionEvent
sequence (Started, Updated with meter values, Ended) numbered by seqNo. A 1.6 connector n is
EVSE n with one connector here.
"""

from __future__ import annotations

import uuid
from typing import Literal

from .station import (
    LOCAL_LIST_MAX,
    Answer,
    ChargerConfig,
    Handler,
    Payload,
    Reading,
    Session,
    Setting,
    TxMessage,
    VirtualCharger,
    number_text,
    sampled_measurands,
    utc_timestamp,
)

# Stop reasons are given in 1.6's vocabulary; 2.0.1 splits them into (stoppedReason, triggerReason).
STOP_REASONS = {
    "Local": ("Local", "StopAuthorized"),
    "Remote": ("Remote", "RemoteStop"),
    "DeAuthorized": ("DeAuthorized", "Deauthorized"),
    "EVDisconnected": ("EVDisconnected", "EVCommunicationLost"),
    "HardReset": ("ImmediateReset", "ResetCommand"),
    "SoftReset": ("ImmediateReset", "ResetCommand"),
    "UnlockCommand": ("Other", "UnlockCommand"),
    "EmergencyStop": ("EmergencyStop", "AbnormalCondition"),
    "PowerLoss": ("PowerLoss", "AbnormalCondition"),
    "Reboot": ("Reboot", "AbnormalCondition"),
}


class Charger201(VirtualCharger):
    version = "2.0.1"
    v16 = False
    FORMAT_ERROR = "FormatViolation"
    UNKNOWN_TYPE_ERROR = "MessageTypeNotSupported"
    OCCURRENCE_ERROR = "OccurrenceConstraintViolation"
    HEARTBEAT_KEY = "OCPPCommCtrlr/HeartbeatInterval"
    METER_KEY = "SampledDataCtrlr/TxUpdatedInterval"
    REMOTE_AUTH_KEY = "AuthCtrlr/AuthorizeRemoteStart"
    ID_INFO_KEY = "idTokenInfo"
    LIST_VERSION_KEY = "versionNumber"
    STARTING_STATUS = "Occupied"
    CHARGING_STATUS = None  # a charging EVSE stays Occupied
    FINISHING_STATUS = None

    @staticmethod
    def _initial_settings(config: ChargerConfig) -> dict[str, Setting]:
        """Keyed ``component/variable``, as Get/SetVariables name them."""
        return {
            "OCPPCommCtrlr/HeartbeatInterval": Setting("300", kind="number"),
            "SampledDataCtrlr/TxUpdatedInterval": Setting(
                number_text(config.meter_interval), kind="number"
            ),
            "SampledDataCtrlr/TxUpdatedMeasurands": Setting(sampled_measurands()),
            "AuthCtrlr/AuthorizeRemoteStart": Setting("false", kind="bool"),
            "LocalAuthListCtrlr/Enabled": Setting("true", kind="bool"),
            "LocalAuthListCtrlr/ItemsPerMessage": Setting(str(LOCAL_LIST_MAX), readonly=True),
        }

    def _handler_table(self) -> dict[str, Handler]:
        return {
            **super()._handler_table(),
            "RequestStartTransaction": self._on_remote_start,
            "RequestStopTransaction": self._on_remote_stop,
            "GetVariables": self._on_get_variables,
            "SetVariables": self._on_set_variables,
            "CostUpdated": self._on_cost_updated,
        }

    # ------------------------------------------------------ charger messages

    def _boot_payload(self, serial: str) -> Payload:
        cfg = self.config
        return {
            "reason": self._boot_reason,
            "chargingStation": {
                "vendorName": cfg.vendor,
                "model": cfg.model,
                "serialNumber": serial,
                "firmwareVersion": cfg.firmware,
            },
        }

    def _status_payload(self, connector: int, status: str, error_code: str) -> Payload:
        return {
            "timestamp": utc_timestamp(),
            "connectorStatus": status,
            "evseId": connector,
            "connectorId": 1,
        }

    def _authorize_payload(self, token: str) -> Payload:
        return {"idToken": {"idToken": token, "type": "ISO14443"}}

    def _sampled_values(self, readings: list[Reading], context: str) -> list[Payload]:
        return [
            {
                "value": value,
                "context": context,
                "measurand": measurand,
                "location": location,
                "unitOfMeasure": {"unit": unit},
            }
            for measurand, value, unit, location in readings
        ]

    async def send_meter_values(
        self, connector: int, *, context: str = "Sample.Periodic"
    ) -> Payload | None:
        """MeterValues of one connector; during a session (unless triggered) a TransactionEvent
        Updated instead, a transaction message queued while offline, in which case this
        returns None."""
        sample = self._sample(connector, context)
        session = self.sessions.get(connector)
        if session is None or context == "Trigger":
            return await self.call("MeterValues", {"evseId": connector, "meterValue": [sample]})
        event = self._transaction_event(session, "Updated", "MeterValuePeriodic", [sample])
        return await self._send_tx("TransactionEvent", event, session)

    # ------------------------------------------------------------ transactions

    def _new_transaction_id(self) -> str:
        return str(uuid.uuid4())

    def _start_message(self, session: Session) -> tuple[str, Payload]:
        trigger = "Authorized" if session.remote_start_id is None else "RemoteStart"
        return "TransactionEvent", self._transaction_event(
            session, "Started", trigger, [session.begin_sample]
        )

    def _stop_message(
        self, session: Session, reason: str, end_sample: Payload, meter_stop: int
    ) -> tuple[str, Payload]:
        stopped, trigger = STOP_REASONS.get(reason, ("Other", "AbnormalCondition"))
        return "TransactionEvent", self._transaction_event(
            session, "Ended", trigger, [end_sample], stopped
        )

    def _transaction_event(
        self,
        session: Session,
        event_type: Literal["Started", "Updated", "Ended"],
        trigger: str,
        meter_values: list[Payload],
        stopped_reason: str | None = None,
    ) -> Payload:
        info: Payload = {"transactionId": session.transaction_id}
        if event_type == "Ended":
            info["chargingState"] = "EVConnected"
            info["stoppedReason"] = stopped_reason or "Local"
        else:
            info["chargingState"] = "Charging"
        if event_type == "Started" and session.remote_start_id is not None:
            info["remoteStartId"] = session.remote_start_id
        event: Payload = {
            "eventType": event_type,
            "timestamp": utc_timestamp(),
            "triggerReason": trigger,
            "seqNo": session.seq_no,
            "transactionInfo": info,
        }
        session.seq_no += 1
        if not self.online:
            event["offline"] = True
        id_token = {"idToken": session.id_token, "type": session.token_type}
        if event_type == "Started":
            event["idToken"] = id_token
            event["evse"] = {"id": session.connector, "connectorId": 1}
        elif trigger == "StopAuthorized":
            event["idToken"] = id_token
        if meter_values:
            event["meterValue"] = meter_values
        return event

    def _tx_payload(self, message: TxMessage) -> Payload | None:
        return message.payload  # complete when queued: the station names its transactions

    def _on_tx_response(self, message: TxMessage) -> None:
        response = message.response or {}
        self._stop_unless_accepted(message.session, response.get("idTokenInfo", {}).get("status"))

    # ----------------------------------------------------- answering the CSMS

    def _on_remote_start(self, p: Payload) -> Answer:
        connector = self._free_connector(p.get("evseId"))
        token, remote_start_id = p["idToken"], p["remoteStartId"]
        if connector is None:
            return {"status": "Rejected"}, None
        self._claimed.add(connector)  # so a second remote start cannot pick it meanwhile
        return {"status": "Accepted"}, lambda: self._remote_session(
            connector, token["idToken"], token["type"], remote_start_id
        )

    def _on_reset(self, p: Payload) -> Answer:
        accepted = super()._on_reset(p)  # first, so a Reset without its type is refused as such
        if p.get("evseId") is not None:
            return {"status": "Rejected"}, None  # resetting a single EVSE is not simulated
        return accepted

    def _on_unlock(self, p: Payload) -> Answer:
        evse, connector = p["evseId"], p["connectorId"]
        if evse not in self.connector_status or connector != 1:
            return {"status": "UnknownConnector"}, None
        if evse in self.sessions:
            return {"status": "OngoingAuthorizedTransaction"}, None
        return {"status": "Unlocked"}, None

    def _on_change_availability(self, p: Payload) -> Answer:
        return self._change_availability(
            p.get("evse", {}).get("id", 0), p["operationalStatus"] == "Operative"
        )

    def _on_trigger(self, p: Payload) -> Answer:
        requested, evse = p["requestedMessage"], p.get("evse", {}).get("id")
        if evse is not None and evse not in self.connector_status:
            return {"status": "Rejected"}, None
        connectors = [evse] if evse else list(self._connectors())
        sessions = [self.sessions[c] for c in connectors if c in self.sessions]
        if requested == "BootNotification" and self.boot_status == "Accepted":
            return {"status": "Rejected"}, None  # F06.FR.17: no re-boot once accepted
        if requested == "TransactionEvent" and not sessions:
            return {"status": "Rejected"}, None

        async def boot() -> None:
            self._boot_reason = "Triggered"
            await self.boot()

        async def transaction_events() -> None:
            for session in sessions:
                sample = self._sample(session.connector, "Trigger")
                event = self._transaction_event(session, "Updated", "Trigger", [sample])
                await self._send_tx("TransactionEvent", event, session)

        return self._answer_trigger(requested, connectors, {
            "BootNotification": boot,
            "TransactionEvent": transaction_events,
            "LogStatusNotification": lambda: self.call("LogStatusNotification", {"status": "Idle"}),
        })

    def _variable_status(self, item: Payload, writing: bool) -> tuple[str, Setting | None]:
        component, variable = item["component"]["name"], item["variable"]["name"]
        setting = self.settings.get(f"{component}/{variable}")
        if setting is None:
            known = any(key.startswith(component + "/") for key in self.settings)
            return ("UnknownVariable" if known else "UnknownComponent"), None
        if item.get("attributeType", "Actual") != "Actual":
            return "NotSupportedAttributeType", None
        if writing and (setting.readonly or not setting.accepts(item["attributeValue"])):
            return "Rejected", None
        return "Accepted", setting

    def _on_get_variables(self, p: Payload) -> Answer:
        results = []
        for item in p["getVariableData"]:
            status, setting = self._variable_status(item, writing=False)
            result = {"attributeStatus": status, "component": item["component"]}
            result["variable"] = item["variable"]
            if setting is not None:
                result["attributeType"] = "Actual"
                result["attributeValue"] = setting.value
            results.append(result)
        return {"getVariableResult": results}, None

    def _on_set_variables(self, p: Payload) -> Answer:
        results = []
        for item in p["setVariableData"]:
            status, setting = self._variable_status(item, writing=True)
            if setting is not None:
                setting.value = item["attributeValue"]
            results.append(
                {
                    "attributeStatus": status,
                    "attributeType": item.get("attributeType", "Actual"),
                    "component": item["component"],
                    "variable": item["variable"],
                }
            )
        return {"setVariableResult": results}, None

    def _on_cost_updated(self, p: Payload) -> Answer:
        total, transaction_id = p["totalCost"], p["transactionId"]
        if isinstance(total, bool) or not isinstance(total, int | float):
            raise TypeError("totalCost must be a number")
        if not isinstance(transaction_id, str):
            raise TypeError("transactionId must be a string")
        self.costs[transaction_id] = float(total)
        return {}, None  # CostUpdatedResponse has no fields: received

    @staticmethod
    def _entry_token(entry: Payload) -> str:
        return entry["idToken"]["idToken"]
