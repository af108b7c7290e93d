"""The charger simulator (tools.simulator): every frame it builds against the official OCPP JSON
schemas shipped in the ocpp library, and its behaviour against a small CSMS written here with the
websockets library. No Django and no database: these tests only need 127.0.0.1."""

import asyncio
import base64
import functools
import itertools
import json
import re
import subprocess
import sys
import threading
from collections.abc import AsyncIterator, Callable, Coroutine, Iterator
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path
from typing import Any

import jsonschema
import ocpp
import pytest
from websockets.asyncio.server import ServerConnection, serve

from tests.support import ROOT
from tools.simulator import (
    CallError,
    ChargerConfig,
    FleetSummary,
    VirtualCharger,
    run_many,
    utc_timestamp,
)

SCHEMAS = Path(ocpp.__file__).parent
TIMESTAMP = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
PASSWORD = "sim-password-0123456789"
VERSIONS = ["1.6", "2.0.1"]


# ---------------------------------------------------------------- a tiny CSMS


class FakeCsms:
    """Answers chargers like a CSMS would and records every frame they send."""

    def __init__(self, boot_statuses: Iterator[str] | None = None) -> None:
        self.received: list[list[Any]] = []  # frames from chargers, in arrival order
        self.connections: list[ServerConnection] = []
        self.sent_actions: dict[str, str] = {}  # id of a CALL we sent -> its action
        self.drop_once: set[str] = set()  # actions to answer by cutting the connection, once
        self.errors: dict[str, str] = {}  # action -> CALLERROR code to answer with
        self.boot_statuses = boot_statuses or itertools.repeat("Accepted")
        self.transaction_ids = itertools.count(1)
        self.issued: list[int] = []  # transaction ids handed out, in order
        self._replies: dict[str, asyncio.Future[list[Any]]] = {}
        self._ids = itertools.count(1)

    async def handler(self, ws: ServerConnection) -> None:
        self.connections.append(ws)
        async for raw in ws:
            frame = json.loads(raw)
            self.received.append(frame)
            if frame[0] != 2:
                future = self._replies.pop(frame[1], None)
                if future is not None:
                    future.set_result(frame)
            elif frame[2] in self.drop_once:
                self.drop_once.discard(frame[2])
                await ws.close()  # as if the network died before the answer
            elif frame[2] in self.errors:
                await ws.send(json.dumps([4, frame[1], self.errors[frame[2]], "refused", {}]))
            else:
                answer = self.answer(ws.subprotocol == "ocpp1.6", frame[2])
                await ws.send(json.dumps([3, frame[1], answer]))

    def answer(self, v16: bool, action: str) -> dict[str, Any]:
        accepted = {"status": "Accepted"}
        if action == "BootNotification":
            return {
                "status": next(self.boot_statuses),
                "currentTime": utc_timestamp(),
                "interval": 1,
            }
        if action == "Heartbeat":
            return {"currentTime": utc_timestamp()}
        if action == "Authorize":
            return {"idTagInfo": accepted} if v16 else {"idTokenInfo": accepted}
        if action == "StartTransaction":
            self.issued.append(next(self.transaction_ids))
            return {"transactionId": self.issued[-1], "idTagInfo": accepted}
        return {}

    async def call(self, action: str, payload: Any, connection: int = -1) -> list[Any]:
        """Send a CALL to a charger; returns its whole reply frame."""
        msg_id = f"csms-{next(self._ids)}"
        future = asyncio.get_running_loop().create_future()
        self._replies[msg_id] = future
        self.sent_actions[msg_id] = action
        await self.connections[connection].send(json.dumps([2, msg_id, action, payload]))
        return await asyncio.wait_for(future, 3)

    def calls(self, action: str | None = None, since: int = 0) -> list[list[Any]]:
        """CALLs received (of one action), skipping the first ``since`` CALLs of any action."""
        calls = [f for f in self.received if f[0] == 2]
        return [f for f in calls[since:] if action in (None, f[2])]

    def payloads(self, action: str) -> list[dict[str, Any]]:
        return [f[3] for f in self.calls(action)]

    def statuses(self) -> list[str]:
        return [
            p.get("status", p.get("connectorStatus")) for p in self.payloads("StatusNotification")
        ]


@asynccontextmanager
async def csms(fake: FakeCsms) -> AsyncIterator[str]:
    """Serve ``fake`` on a free loopback port; yields the base URL chargers connect to."""
    async with serve(fake.handler, "127.0.0.1", 0, subprotocols=["ocpp1.6", "ocpp2.0.1"]) as server:
        port = server.sockets[0].getsockname()[1]
        yield f"ws://127.0.0.1:{port}/ocpp/"


@contextmanager
def csms_in_thread(fake: FakeCsms) -> Iterator[str]:
    """The same CSMS on its own thread and loop, for code that runs asyncio.run itself."""
    ready = threading.Event()
    served: list[tuple[str, asyncio.AbstractEventLoop, asyncio.Event]] = []

    async def main() -> None:
        done = asyncio.Event()
        async with csms(fake) as base:
            served.append((base, asyncio.get_running_loop(), done))
            ready.set()
            await done.wait()

    thread = threading.Thread(target=asyncio.run, args=(main(),), daemon=True)
    thread.start()
    assert ready.wait(5)
    url, loop, done = served[0]
    try:
        yield url
    finally:
        loop.call_soon_threadsafe(done.set)
        thread.join(5)


def run(coro: Coroutine[Any, Any, Any], timeout: float = 10) -> Any:
    return asyncio.run(asyncio.wait_for(coro, timeout))


async def until(predicate: Callable[[], object], within: float = 3) -> None:
    async with asyncio.timeout(within):
        while not predicate():  # noqa: ASYNC110 (polls what the fake CSMS recorded)
            await asyncio.sleep(0.01)


def config(url: str, version: str, **overrides: Any) -> ChargerConfig:
    fields: dict[str, Any] = {
        "station_id": f"TEST-{version.replace('.', '')}-0001",
        "version": version,
        "url": url,
        "password": PASSWORD,
        "id_tokens": ["CARD1"],
        "call_timeout": 2,
        "reconnect_min": 0.05,
        "reconnect_max": 0.2,
    }
    return ChargerConfig(**(fields | overrides))


# ---------------------------------------------------------------- schemas


@functools.cache
def validator(version: str, action: str, response: bool) -> jsonschema.protocols.Validator:
    if version == "1.6":
        path = SCHEMAS / "v16" / "schemas" / f"{action}{'Response' if response else ''}.json"
    else:
        path = (
            SCHEMAS / "v201" / "schemas" / f"{action}{'Response' if response else 'Request'}.json"
        )
    schema = json.loads(path.read_text())
    cls = jsonschema.validators.validator_for(schema)
    return cls(schema, format_checker=cls.FORMAT_CHECKER)


def timestamps(value: Any) -> Iterator[str]:
    if isinstance(value, dict):
        for key, item in value.items():
            if key in ("timestamp", "currentTime"):
                yield item
            else:
                yield from timestamps(item)
    elif isinstance(value, list):
        for item in value:
            yield from timestamps(item)


def assert_valid_frames(fake: FakeCsms, version: str) -> None:
    """Every CALL and CALLRESULT the charger sent is valid for its action."""
    for frame in fake.received:
        if frame[0] == 2:
            validator(version, frame[2], response=False).validate(frame[3])
            payload = frame[3]
        elif frame[0] == 3:
            validator(version, fake.sent_actions[frame[1]], response=True).validate(frame[2])
            payload = frame[2]
        else:
            assert len(frame) == 5 and isinstance(frame[4], dict), frame
            continue
        for stamp in timestamps(payload):
            assert TIMESTAMP.match(stamp), stamp


# The CSMS-initiated CALLs each version answers, with what the answer must say.
CSMS_CALLS = {
    "1.6": [
        ("GetConfiguration", {}, {}),
        ("GetConfiguration", {"key": ["HeartbeatInterval", "Nope"]}, {"unknownKey": ["Nope"]}),
        ("ChangeConfiguration", {"key": "MeterValueSampleInterval", "value": "60"}, "Accepted"),
        ("ChangeConfiguration", {"key": "NumberOfConnectors", "value": "3"}, "Rejected"),
        ("ChangeConfiguration", {"key": "HeartbeatInterval", "value": "soon"}, "Rejected"),
        ("ChangeConfiguration", {"key": "Nope", "value": "1"}, "NotSupported"),
        ("UnlockConnector", {"connectorId": 1}, "Unlocked"),
        ("UnlockConnector", {"connectorId": 9}, "NotSupported"),
        (
            "SendLocalList",
            {
                "listVersion": 2,
                "updateType": "Full",
                "localAuthorizationList": [{"idTag": "CARD1", "idTagInfo": {"status": "Accepted"}}],
            },
            "Accepted",
        ),
        ("SendLocalList", {"listVersion": 2, "updateType": "Differential"}, "VersionMismatch"),
        ("GetLocalListVersion", {}, {"listVersion": 2}),
        ("ClearCache", {}, "Accepted"),
        ("DataTransfer", {"vendorId": "com.example"}, "UnknownVendorId"),
        ("RemoteStopTransaction", {"transactionId": 999}, "Rejected"),
        ("TriggerMessage", {"requestedMessage": "Heartbeat"}, "Accepted"),
        ("TriggerMessage", {"requestedMessage": "StatusNotification"}, "Accepted"),
        ("TriggerMessage", {"requestedMessage": "MeterValues", "connectorId": 1}, "Accepted"),
        ("TriggerMessage", {"requestedMessage": "BootNotification"}, "Accepted"),
        ("TriggerMessage", {"requestedMessage": "DiagnosticsStatusNotification"}, "Accepted"),
        ("TriggerMessage", {"requestedMessage": "FirmwareStatusNotification"}, "Accepted"),
        ("ChangeAvailability", {"connectorId": 1, "type": "Inoperative"}, "Accepted"),
        ("ChangeAvailability", {"connectorId": 0, "type": "Operative"}, "Accepted"),
    ],
    "2.0.1": [
        (
            "GetVariables",
            {
                "getVariableData": [
                    {
                        "component": {"name": "OCPPCommCtrlr"},
                        "variable": {"name": "HeartbeatInterval"},
                    },
                    {"component": {"name": "OCPPCommCtrlr"}, "variable": {"name": "Nope"}},
                    {"component": {"name": "Nope"}, "variable": {"name": "Nope"}},
                ]
            },
            {},
        ),
        (
            "SetVariables",
            {
                "setVariableData": [
                    {
                        "attributeValue": "60",
                        "component": {"name": "SampledDataCtrlr"},
                        "variable": {"name": "TxUpdatedInterval"},
                    },
                    {
                        "attributeValue": "soon",
                        "component": {"name": "OCPPCommCtrlr"},
                        "variable": {"name": "HeartbeatInterval"},
                    },
                ]
            },
            {},
        ),
        ("UnlockConnector", {"evseId": 1, "connectorId": 1}, "Unlocked"),
        ("UnlockConnector", {"evseId": 9, "connectorId": 1}, "UnknownConnector"),
        (
            "SendLocalList",
            {
                "versionNumber": 2,
                "updateType": "Full",
                "localAuthorizationList": [
                    {
                        "idToken": {"idToken": "CARD1", "type": "ISO14443"},
                        "idTokenInfo": {"status": "Accepted"},
                    }
                ],
            },
            "Accepted",
        ),
        ("SendLocalList", {"versionNumber": 2, "updateType": "Differential"}, "VersionMismatch"),
        ("GetLocalListVersion", {}, {"versionNumber": 2}),
        ("ClearCache", {}, "Accepted"),
        ("DataTransfer", {"vendorId": "com.example"}, "UnknownVendorId"),
        ("RequestStopTransaction", {"transactionId": "nope"}, "Rejected"),
        ("TriggerMessage", {"requestedMessage": "Heartbeat"}, "Accepted"),
        ("TriggerMessage", {"requestedMessage": "StatusNotification"}, "Accepted"),
        ("TriggerMessage", {"requestedMessage": "MeterValues", "evse": {"id": 1}}, "Accepted"),
        ("TriggerMessage", {"requestedMessage": "BootNotification"}, "Rejected"),
        ("TriggerMessage", {"requestedMessage": "TransactionEvent"}, "Rejected"),
        ("TriggerMessage", {"requestedMessage": "FirmwareStatusNotification"}, "Accepted"),
        ("TriggerMessage", {"requestedMessage": "LogStatusNotification"}, "Accepted"),
        ("TriggerMessage", {"requestedMessage": "SignV2GCertificate"}, "NotImplemented"),
        ("CostUpdated", {"totalCost": 1.5, "transactionId": "tx-1"}, {}),
        ("ChangeAvailability", {"operationalStatus": "Inoperative", "evse": {"id": 1}}, "Accepted"),
        ("ChangeAvailability", {"operationalStatus": "Operative"}, "Accepted"),
    ],
}


def check_answer(reply: list[Any], expected: str | dict[str, Any]) -> None:
    assert reply[0] == 3, reply
    if isinstance(expected, str):
        assert reply[2]["status"] == expected, reply
    else:
        assert expected.items() <= reply[2].items(), reply


@pytest.mark.parametrize("version", VERSIONS)
def test_every_frame_matches_the_official_schemas(version: str) -> None:
    async def scenario() -> None:
        fake = FakeCsms()
        async with csms(fake) as url:
            charger = VirtualCharger(config(url, version, meter_interval=3600))
            await charger.connect()
            try:
                assert (await charger.boot())["status"] == "Accepted"
                await charger.status(1, "Available")
                await charger.heartbeat()
                assert await charger.authorize("CARD1") == "Accepted"
                await charger.start_session(1, "CARD1")
                await charger.send_meter_values(1)
                await charger.stop_session(1, "Local")
                await charger.send_meter_values(1)  # no session: plain MeterValues

                for action, payload, expected in CSMS_CALLS[version]:
                    sent = len(fake.calls())
                    check_answer(await fake.call(action, payload), expected)
                    if action == "TriggerMessage" and expected == "Accepted":
                        await until(lambda sent=sent: len(fake.calls()) > sent)
                await until(lambda: fake.statuses()[-1] == "Available")

                await remote_session(fake, version)
                check_answer(await fake.call("Reset", {"type": "Soft"}), "Accepted")
                await until(lambda: not charger.connected)
            finally:
                await charger.close()
        assert_valid_frames(fake, version)
        assert {"Authorize", "BootNotification", "Heartbeat", "MeterValues"} <= {
            f[2] for f in fake.calls()
        }

    run(scenario())


async def remote_session(fake: FakeCsms, version: str) -> None:
    """Remote start, wait for the session, remote stop, wait for the connector to be free."""
    if version == "1.6":
        check_answer(await fake.call("RemoteStartTransaction", {"idTag": "CARD2"}), "Accepted")
        await until(lambda: len(fake.issued) == 2)  # one from the session driven by hand
        stop = {"transactionId": fake.issued[-1]}
        check_answer(await fake.call("RemoteStopTransaction", stop), "Accepted")
        await until(lambda: fake.calls("StopTransaction"))
    else:
        start = {"idToken": {"idToken": "CARD2", "type": "Central"}, "remoteStartId": 7}
        check_answer(await fake.call("RequestStartTransaction", start), "Accepted")
        await until(lambda: remotely_started(fake))
        stop = {"transactionId": remotely_started(fake)[0]["transactionInfo"]["transactionId"]}
        check_answer(await fake.call("RequestStopTransaction", stop), "Accepted")
        await until(lambda: fake.payloads("TransactionEvent")[-1]["eventType"] == "Ended")
    await until(lambda: fake.statuses()[-1] == "Available")


def remotely_started(fake: FakeCsms) -> list[dict[str, Any]]:
    events = fake.payloads("TransactionEvent")
    return [e for e in events if e["transactionInfo"].get("remoteStartId") == 7]


# ---------------------------------------------------------------- behaviour


@pytest.mark.parametrize("version", VERSIONS)
def test_run_boots_and_a_remote_start_and_stop_make_a_session(version: str) -> None:
    async def scenario() -> FakeCsms:
        fake = FakeCsms()
        async with csms(fake) as url:
            # 3.6 MW: one Wh per millisecond, so the short session shows on the meter.
            charger = VirtualCharger(config(url, version, meter_interval=0.05, power_w=3_600_000))
            stop = asyncio.Event()
            task = asyncio.create_task(charger.run(stop))
            await until(lambda: fake.statuses() == ["Available"])
            if version == "1.6":
                await fake.call("RemoteStartTransaction", {"idTag": "CARD2"})
                await until(lambda: len(fake.calls("MeterValues")) >= 2)
                await fake.call("RemoteStopTransaction", {"transactionId": 1})
            else:
                start = {"idToken": {"idToken": "CARD2", "type": "Central"}, "remoteStartId": 7}
                await fake.call("RequestStartTransaction", start)
                await until(lambda: len(fake.calls("TransactionEvent")) >= 3)
                transaction_id = fake.payloads("TransactionEvent")[0]["transactionInfo"][
                    "transactionId"
                ]
                await fake.call("RequestStopTransaction", {"transactionId": transaction_id})
            await until(lambda: fake.statuses()[-1] == "Available" and len(fake.statuses()) > 2)
            stop.set()
            await asyncio.wait_for(task, 5)
        request = fake.connections[0].request
        assert request.path == f"/ocpp/TEST-{version.replace('.', '')}-0001"
        user_password = f"TEST-{version.replace('.', '')}-0001:{PASSWORD}".encode()
        assert (
            request.headers["Authorization"] == "Basic " + base64.b64encode(user_password).decode()
        )
        assert fake.connections[0].subprotocol == f"ocpp{version}"
        return fake

    fake = run(scenario())
    assert_valid_frames(fake, version)
    actions = [f[2] for f in fake.calls() if f[2] not in ("Heartbeat", "MeterValues")]
    if version == "1.6":
        assert actions == [
            "BootNotification",
            "StatusNotification",
            "StatusNotification",
            "StartTransaction",
            "StatusNotification",
            "StopTransaction",
            "StatusNotification",
            "StatusNotification",
        ]
        assert fake.statuses() == ["Available", "Preparing", "Charging", "Finishing", "Available"]
        assert {p["transactionId"] for p in fake.payloads("MeterValues")} == {1}
        (start,), (stop,) = fake.payloads("StartTransaction"), fake.payloads("StopTransaction")
        assert (start["idTag"], stop["transactionId"], stop["reason"]) == ("CARD2", 1, "Remote")
        assert stop["meterStop"] > start["meterStart"]
        started_by = "StartTransaction"
    else:
        assert actions[:3] == ["BootNotification", "StatusNotification", "StatusNotification"]
        assert actions[-1] == "StatusNotification"
        assert set(actions[3:-1]) == {"TransactionEvent"}
        assert fake.statuses() == ["Available", "Occupied", "Available"]
        events = fake.payloads("TransactionEvent")
        assert [e["seqNo"] for e in events] == list(range(len(events)))
        assert events[0]["triggerReason"] == "RemoteStart"
        assert events[0]["transactionInfo"]["remoteStartId"] == 7
        assert events[0]["idToken"] == {"idToken": "CARD2", "type": "Central"}
        assert {e["triggerReason"] for e in events[1:-1]} == {"MeterValuePeriodic"}
        assert events[-1]["eventType"] == "Ended"
        assert events[-1]["triggerReason"] == "RemoteStop"
        assert events[-1]["transactionInfo"]["stoppedReason"] == "Remote"
        started_by = "TransactionEvent"
    # The session starts only after the charger's answer to the remote start went out.
    answer = next(i for i, f in enumerate(fake.received) if f[0] == 3)
    first_start = next(i for i, f in enumerate(fake.received) if f[0] == 2 and f[2] == started_by)
    assert answer < first_start


@pytest.mark.parametrize("version", VERSIONS)
def test_unanswered_transaction_messages_are_resent_in_order_after_reconnect(version: str) -> None:
    start_action = "StartTransaction" if version == "1.6" else "TransactionEvent"

    async def scenario() -> FakeCsms:
        fake = FakeCsms()
        fake.drop_once.add(start_action)
        async with csms(fake) as url:
            charger = VirtualCharger(config(url, version, meter_interval=0.03))
            stop = asyncio.Event()
            task = asyncio.create_task(charger.run(stop))
            await until(lambda: fake.statuses())
            if version == "1.6":
                await fake.call("RemoteStartTransaction", {"idTag": "CARD2"})
            else:
                start = {"idToken": {"idToken": "CARD2", "type": "Central"}, "remoteStartId": 7}
                await fake.call("RequestStartTransaction", start)
            follow_up = "MeterValues" if version == "1.6" else "TransactionEvent"
            await until(
                lambda: len(fake.calls(start_action)) >= 2 and len(fake.calls(follow_up)) >= 4
            )
            stop.set()
            await asyncio.wait_for(task, 5)
        return fake

    fake = run(scenario())
    assert_valid_frames(fake, version)
    starts = fake.calls(start_action)
    first, again = starts[0], starts[1]
    assert first[1] != again[1] and first[3] == again[3]  # same message, new message id
    assert fake.payloads("BootNotification") and len(fake.calls("BootNotification")) == 1
    # After the reconnect the dropped start goes first, then what was queued meanwhile, in order.
    reconnected = fake.received.index(first) + 1
    later = [f for f in fake.received[reconnected:] if f[0] == 2]
    assert later[0] == again
    if version == "1.6":
        meters = [f[3] for f in later if f[2] == "MeterValues"]
        assert meters and {m["transactionId"] for m in meters} == {1}
    else:
        events = [f[3] for f in later if f[2] == "TransactionEvent"]
        assert [e["seqNo"] for e in events] == list(range(len(events)))
        assert events[1].get("offline") is True  # sampled while the connection was down
    stamps = [f[3]["timestamp"] for f in later if f[2] == start_action][1:]
    assert stamps == sorted(stamps)


def test_a_dropped_connection_is_reopened_without_a_new_boot_and_the_session_goes_on() -> None:
    async def scenario() -> FakeCsms:
        fake = FakeCsms()
        async with csms(fake) as url:
            charger = VirtualCharger(config(url, "1.6", meter_interval=0.02))
            stop = asyncio.Event()
            task = asyncio.create_task(charger.run(stop))
            await until(lambda: fake.statuses())
            await fake.call("RemoteStartTransaction", {"idTag": "CARD2"})
            await until(lambda: fake.calls("MeterValues"))
            charger.drop_connection()
            await until(lambda: len(fake.connections) == 2)
            sent_before = len(fake.calls())
            await until(lambda: len(fake.calls("MeterValues", since=sent_before)) >= 2)
            stop.set()  # a stop ends the session properly before disconnecting
            await asyncio.wait_for(task, 5)
        return fake

    fake = run(scenario())
    assert len(fake.calls("BootNotification")) == 1
    assert len(fake.calls("StartTransaction")) == 1
    (stop,) = fake.payloads("StopTransaction")
    assert (stop["transactionId"], stop["reason"]) == (1, "Local")


def test_boot_pending_is_retried_before_anything_else() -> None:
    async def scenario() -> FakeCsms:
        fake = FakeCsms(boot_statuses=iter(["Pending", "Accepted"]))
        async with csms(fake) as url:
            stop = asyncio.Event()
            task = asyncio.create_task(VirtualCharger(config(url, "2.0.1")).run(stop))
            await until(lambda: fake.statuses())
            stop.set()
            await asyncio.wait_for(task, 5)
        return fake

    fake = run(scenario())
    actions = [f[2] for f in fake.calls()]
    assert actions[:3] == ["BootNotification", "BootNotification", "StatusNotification"]


def test_unknown_calls_overrides_and_call_errors() -> None:
    async def scenario() -> None:
        fake = FakeCsms()
        async with csms(fake) as url:
            charger = VirtualCharger(config(url, "1.6"))
            charger.on_call["Reset"] = lambda payload: {"status": "Rejected"}
            charger.on_call["DataTransfer"] = lambda payload: None  # only watching

            async def refuse(payload: dict[str, Any]) -> dict[str, Any]:
                raise CallError("GenericError", "not today")

            charger.on_call["ClearCache"] = refuse
            await charger.connect()
            try:
                await charger.boot()
                assert (await fake.call("FlyToTheMoon", {}))[2] == "NotImplemented"
                assert (await fake.call("Reset", {"type": "Hard"}))[2] == {"status": "Rejected"}
                assert (await fake.call("DataTransfer", {"vendorId": "x"}))[2]["status"] == (
                    "UnknownVendorId"
                )
                assert (await fake.call("ClearCache", {}))[2:4] == ["GenericError", "not today"]
                error = await fake.call("RemoteStartTransaction", {"connectorId": 1})
                assert error[2] == "OccurenceConstraintViolation"
                assert [a for a, _ in charger.received_calls] == [
                    "FlyToTheMoon",
                    "Reset",
                    "DataTransfer",
                    "ClearCache",
                    "RemoteStartTransaction",
                ]
                assert charger.connected  # the overridden Reset did not reset

                fake.errors["Heartbeat"] = "InternalError"
                with pytest.raises(CallError) as refused:
                    await charger.heartbeat()
                assert refused.value.code == "InternalError"
                assert charger.metrics.call_errors == 1
                assert charger.metrics.percentile(50) is not None
            finally:
                await charger.close()

    run(scenario())


def test_cost_updates_are_received_and_the_last_total_kept() -> None:
    async def scenario() -> None:
        fake = FakeCsms()
        async with csms(fake) as url:
            charger = VirtualCharger(config(url, "2.0.1"))
            old = VirtualCharger(config(url, "1.6", station_id="TEST-16-COST"))
            for each in (charger, old):
                await each.connect()
                await each.boot()
            try:
                for total in (0.6, 1.25):
                    reply = await fake.call("CostUpdated",
                                            {"totalCost": total, "transactionId": "tx-7"},
                                            connection=0)
                    assert reply[0] == 3 and reply[2] == {}
                await fake.call("CostUpdated", {"totalCost": 3, "transactionId": "tx-8"},
                                connection=0)
                assert charger.costs == {"tx-7": 1.25, "tx-8": 3.0}
                bad = await fake.call("CostUpdated", {"totalCost": "1.0",
                                                      "transactionId": "tx-7"}, connection=0)
                assert bad[2] == "TypeConstraintViolation"
                missing = await fake.call("CostUpdated", {"totalCost": 1.0}, connection=0)
                assert missing[2] == "OccurrenceConstraintViolation"
                assert charger.costs["tx-7"] == 1.25
                # 1.6 has no such message: not implemented, and nothing kept.
                unknown = await fake.call("CostUpdated", {"totalCost": 1.0,
                                                          "transactionId": "tx-7"},
                                          connection=1)
                assert unknown[2] == "NotImplemented" and old.costs == {}
            finally:
                for each in (charger, old):
                    await each.close()

    run(scenario())


def test_the_energy_register_carries_over_to_the_next_session() -> None:
    async def scenario() -> FakeCsms:
        fake = FakeCsms()
        async with csms(fake) as url:
            # 3.6 MW: one Wh per millisecond, so a few milliseconds of charging show.
            charger = VirtualCharger(config(url, "1.6", power_w=3_600_000))
            await charger.connect()
            try:
                await charger.boot()
                for _ in range(2):
                    await charger.start_session(1, "CARD1")
                    await asyncio.sleep(0.02)
                    await charger.stop_session(1)
            finally:
                await charger.close()
        return fake

    fake = run(scenario())
    starts, stops = fake.payloads("StartTransaction"), fake.payloads("StopTransaction")
    assert starts[0]["meterStart"] < stops[0]["meterStop"] == starts[1]["meterStart"]
    assert starts[1]["meterStart"] < stops[1]["meterStop"]
    assert [s["transactionId"] for s in stops] == [1, 2]


def test_run_many_ramps_up_a_fleet_and_sums_its_metrics() -> None:
    async def scenario() -> tuple[FleetSummary, FakeCsms]:
        fake = FakeCsms()
        async with csms(fake) as url:
            configs = [
                config(url, version, station_id=f"FLEET-{n}")
                for n, version in enumerate(VERSIONS * 3)
            ]
            stop = asyncio.Event()
            fleet = asyncio.create_task(run_many(configs, stop, ramp_per_second=50))
            await until(lambda: len(fake.statuses()) == 6)
            stop.set()
            return await asyncio.wait_for(fleet, 5), fake

    summary, fake = run(scenario())
    assert (summary.chargers, summary.connected, summary.booted) == (6, 6, 6)
    assert summary.metrics.calls == len(fake.calls())
    assert "p99=" in summary.line()


def test_the_command_line_names_stations_and_prints_a_summary() -> None:
    fake = FakeCsms()
    with csms_in_thread(fake) as url:
        finished = subprocess.run(
            [
                sys.executable, "-m", "tools.simulator", "--url", url, "--count", "2",
                "--version", "mix", "--prefix", "SIM", "--password", PASSWORD,
                "--duration", "0.8", "-v", "2",
            ],
            cwd=ROOT, capture_output=True, text=True, timeout=30, check=True,
        )
    paths = sorted((ws.request.path, ws.subprotocol) for ws in fake.connections)
    assert paths == [("/ocpp/SIM-16-0001", "ocpp1.6"), ("/ocpp/SIM-201-0002", "ocpp2.0.1")]
    text = finished.stdout
    assert "SIM-16-0001: boot Accepted" in text
    assert "connected=2" in text and "booted=2" in text
