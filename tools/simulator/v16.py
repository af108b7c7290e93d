"""A simulated OCPP 1.6 charge point: its messages and its answers to the CSMS's CALLs.

In 1.6 the CSMS hands out the transaction id in its answer to StartTransaction, so the messages
queued behind a start (MeterValues, StopTransaction) get that id only when they are sent.
"""

from __future__ import annotations

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


class Charger16(VirtualCharger):
    version = "1.6"
    v16 = True
    FORMAT_ERROR = "FormationViolation"
    UNKNOWN_TYPE_ERROR = "FormationViolation"
    OCCURRENCE_ERROR = "OccurenceConstraintViolation"  # sic: 1.6 spells it so
    HEARTBEAT_KEY = "HeartbeatInterval"
    METER_KEY = "MeterValueSampleInterval"
    REMOTE_AUTH_KEY = "AuthorizeRemoteTxRequests"
    ID_INFO_KEY = "idTagInfo"
    LIST_VERSION_KEY = "listVersion"
    STARTING_STATUS = "Preparing"
    CHARGING_STATUS = "Charging"
    FINISHING_STATUS = "Finishing"

    @staticmethod
    def _initial_settings(config: ChargerConfig) -> dict[str, Setting]:
        return {
            "HeartbeatInterval": Setting("300", kind="number"),
            "MeterValueSampleInterval": Setting(number_text(config.meter_interval), kind="number"),
            "MeterValuesSampledData": Setting(sampled_measurands()),
            "AuthorizeRemoteTxRequests": Setting("false", kind="bool"),
            "ConnectionTimeOut": Setting("60", kind="number"),
            "LocalAuthListEnabled": Setting("true", kind="bool"),
            "LocalAuthListMaxLength": Setting(str(LOCAL_LIST_MAX), readonly=True),
            "SendLocalListMaxLength": Setting(str(LOCAL_LIST_MAX), readonly=True),
            "NumberOfConnectors": Setting(str(config.connectors), readonly=True),
            "SupportedFeatureProfiles": Setting(
                "Core,LocalAuthListManagement,RemoteTrigger", readonly=True
            ),
        }

    def _handler_table(self) -> dict[str, Handler]:
        return {
            **super()._handler_table(),
            "RemoteStartTransaction": self._on_remote_start,
            "RemoteStopTransaction": self._on_remote_stop,
            "GetConfiguration": self._on_get_configuration,
            "ChangeConfiguration": self._on_change_configuration,
        }

    # ------------------------------------------------------ charger messages

    def _boot_payload(self, serial: str) -> Payload:
        cfg = self.config
        return {
            "chargePointVendor": cfg.vendor,
            "chargePointModel": cfg.model,
            "chargePointSerialNumber": serial,
            "firmwareVersion": cfg.firmware,
        }

    def _status_payload(self, connector: int, status: str, error_code: str) -> Payload:
        return {
            "connectorId": connector,
            "errorCode": error_code,
            "status": status,
            "timestamp": utc_timestamp(),
        }

    def _authorize_payload(self, token: str) -> Payload:
        return {"idTag": token}

    def _sampled_values(self, readings: list[Reading], context: str) -> list[Payload]:
        return [
            {
                "value": number_text(value),
                "context": context,
                "format": "Raw",
                "measurand": measurand,
                "location": location,
                "unit": unit,
            }
            for measurand, value, unit, location in readings
        ]

    async def send_meter_values(
        self, connector: int, *, context: str = "Sample.Periodic"
    ) -> Payload | None:
        """MeterValues of one connector; during a session a transaction message (with the
        session's transactionId), queued while offline, in which case this returns None."""
        sample = self._sample(connector, context)
        session = self.sessions.get(connector)
        payload: Payload = {"connectorId": connector, "meterValue": [sample]}
        if session is None:
            return await self.call("MeterValues", payload)
        return await self._send_tx("MeterValues", payload, session)

    # ------------------------------------------------------------ transactions

    def _new_transaction_id(self) -> None:
        return None  # StartTransaction's answer gives it

    def _start_message(self, session: Session) -> tuple[str, Payload]:
        return "StartTransaction", {
            "connectorId": session.connector,
            "idTag": session.id_token,
            "meterStart": session.meter_start,
            "timestamp": utc_timestamp(),
        }

    def _stop_message(
        self, session: Session, reason: str, end_sample: Payload, meter_stop: int
    ) -> tuple[str, Payload]:
        return "StopTransaction", {
            "idTag": session.id_token,
            "meterStop": meter_stop,
            "timestamp": utc_timestamp(),
            "reason": reason,
            "transactionData": [session.begin_sample, end_sample],
        }

    def _tx_payload(self, message: TxMessage) -> Payload | None:
        """Messages after StartTransaction carry the id its answer gave, known only now.

        None when that start was refused: nothing can refer to the transaction then.
        """
        if message.action == "StartTransaction":
            return message.payload
        if message.session.transaction_id is None:
            return None
        return {**message.payload, "transactionId": message.session.transaction_id}

    def _on_tx_response(self, message: TxMessage) -> None:
        if message.action != "StartTransaction":
            return
        response, session = message.response or {}, message.session
        session.transaction_id = response.get("transactionId")
        self._stop_unless_accepted(session, response.get("idTagInfo", {}).get("status"))

    # ----------------------------------------------------- answering the CSMS

    def _on_remote_start(self, p: Payload) -> Answer:
        connector = self._free_connector(p.get("connectorId"))
        token = p["idTag"]
        if connector is None:
            return {"status": "Rejected"}, None
        self._claimed.add(connector)  # so a second remote start cannot pick it meanwhile
        return {"status": "Accepted"}, lambda: self._remote_session(
            connector, token, "ISO14443", None
        )

    def _on_unlock(self, p: Payload) -> Answer:
        connector = p["connectorId"]
        if connector not in self.connector_status:
            return {"status": "NotSupported"}, None
        if connector in self.sessions:
            return {"status": "Unlocked"}, lambda: self.stop_session(connector, "UnlockCommand")
        return {"status": "Unlocked"}, None

    def _on_change_availability(self, p: Payload) -> Answer:
        return self._change_availability(p["connectorId"], p["type"] == "Operative")

    def _on_trigger(self, p: Payload) -> Answer:
        requested, connector = p["requestedMessage"], p.get("connectorId")
        if connector is not None and connector != 0 and connector not in self.connector_status:
            return {"status": "Rejected"}, None
        connectors = [connector] if connector else list(self._connectors())
        return self._answer_trigger(requested, connectors, {
            "BootNotification": self.boot,
            "DiagnosticsStatusNotification": lambda: self.call(
                "DiagnosticsStatusNotification", {"status": "Idle"}
            ),
        })

    def _on_get_configuration(self, p: Payload) -> Answer:
        keys = p.get("key") or list(self.settings)
        known = [
            {"key": k, "readonly": self.settings[k].readonly, "value": self.settings[k].value}
            for k in keys
            if k in self.settings
        ]
        unknown = [k for k in keys if k not in self.settings]
        result: Payload = {"configurationKey": known}
        if unknown:
            result["unknownKey"] = unknown
        return result, None

    def _on_change_configuration(self, p: Payload) -> Answer:
        setting, value = self.settings.get(p["key"]), p["value"]
        if setting is None:
            return {"status": "NotSupported"}, None
        if setting.readonly or not setting.accepts(value):
            return {"status": "Rejected"}, None
        setting.value = value
        return {"status": "Accepted"}, None

    @staticmethod
    def _entry_token(entry: Payload) -> str:
        return entry["idTag"]
