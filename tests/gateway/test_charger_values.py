"""What a charger's values may be, over a real socket: timestamps near the server's clock only,
and CALLERRORs that describe the field and the rule, never the value the charger sent (it may be
someone's card number; it goes back over the wire and into every log that keeps the frame)."""

from datetime import UTC, datetime, timedelta

import pytest
from asgiref.sync import async_to_sync

from csms.gateway.frames import utc_timestamp
from stations.models import MessageLog, Transaction
from tests.support.chargers import RealCharger, serving
from tests.support.personas import make_station

pytestmark = pytest.mark.django_db(transaction=True)

SECRET = "SECRET4711"  # stands for any value a charger sent: a card, a vendor's text


def calls(station_id: str, version: str, messages: list[tuple[str, object]]) -> list[list]:
    """Send each (action, payload or raw frame text) in turn; the answers."""
    async def flow() -> list[list]:
        async with serving() as port, RealCharger.connected(port, station_id,
                                                            version) as charger:
            found = []
            for action, payload in messages:
                if isinstance(payload, str):
                    found.append(await charger.send_raw(payload))
                else:
                    found.append(await charger.call(action, payload))
            return found
    return async_to_sync(flow)()


def ago(**delta: float) -> str:
    return utc_timestamp(datetime.now(UTC) - timedelta(**delta))


IMPOSSIBLE = ["2300-01-01T00:00:00Z", "9999-12-31T23:59:59Z", "0001-01-01T00:00:00Z",
              "0001-01-01T00:00:00+01:00", "9999-12-31T23:59:59-23:59", "1970-01-01T00:00:00Z"]


def test_a_timestamp_no_real_clock_reads_is_refused_in_every_message():
    make_station("CLOCK16")
    make_station("CLOCK201", ocpp_version="2.0.1")

    def status(at: str) -> dict:
        return {"connectorId": 1, "errorCode": "NoError", "status": "Available", "timestamp": at}

    def start(at: str) -> dict:
        return {"connectorId": 1, "idTag": "CARD-1", "meterStart": 0, "timestamp": at}

    def event(at: str, n: int) -> dict:
        return {"eventType": "Started", "timestamp": at, "triggerReason": "Authorized",
                "seqNo": 0, "transactionInfo": {"transactionId": f"CLOCK-{n}"},
                "evse": {"id": 1, "connectorId": 1}}

    answers16 = calls("CLOCK16", "1.6", [
        *(("StatusNotification", status(at)) for at in IMPOSSIBLE),
        *(("StartTransaction", start(at)) for at in IMPOSSIBLE),
        # The drift a clock has, and messages a charger kept while it was offline: accepted.
        ("StatusNotification", status(ago(seconds=-600))),
        ("StartTransaction", start(ago(days=30)))])
    answers201 = calls("CLOCK201", "2.0.1", [
        *(("TransactionEvent", event(at, n)) for n, at in enumerate(IMPOSSIBLE)),
        ("TransactionEvent", event(ago(hours=5), 99))])

    refused16, accepted16 = answers16[:-2], answers16[-2:]
    assert {(a[0], a[2]) for a in refused16} == {(4, "PropertyConstraintViolation")}
    assert [a[0] for a in accepted16] == [3, 3]
    assert {(a[0], a[2]) for a in answers201[:-1]} == {(4, "PropertyConstraintViolation")}
    assert answers201[-1][0] == 3
    assert Transaction.objects.count() == 2  # the refused ones opened nothing
    # Nothing lost: each refused frame is in the station's message log, as it came.
    logged = MessageLog.objects.filter(station_id="CLOCK201", direction="in",
                                       action="TransactionEvent")
    assert {row.payload["timestamp"] for row in logged} >= set(IMPOSSIBLE)


@pytest.mark.parametrize("version", ["1.6", "2.0.1"])
def test_callerrors_name_the_field_and_the_rule_never_the_value(version):
    make_station("ECHO", ocpp_version=version)
    if version == "1.6":
        messages = [
            ("Authorize", {"idTag": SECRET * 3}),  # longer than 20
            ("Authorize", {"idTag": SECRET, SECRET: 1}),  # a property the schema lacks
            ("StatusNotification", {"connectorId": 1, "errorCode": SECRET, "status": "Available"}),
            ("StartTransaction", {"connectorId": 1, "idTag": "A", "meterStart": 0,
                                  "timestamp": SECRET}),
            ("MeterValues", {"connectorId": 1, "meterValue": [
                {"timestamp": ago(seconds=1), "sampledValue": [{"value": SECRET}]}]}),
            (SECRET, {}),  # an action no version has
            ("Authorize", f'[2, "raw", "Authorize", {{"idTag": 4711{"1" * 60}}}]'),
        ]
    else:
        messages = [
            ("Authorize", {"idToken": {"idToken": SECRET * 5, "type": "ISO14443"}}),
            ("Authorize", {"idToken": {"idToken": SECRET, "type": SECRET}}),
            ("Heartbeat", {SECRET: SECRET}),
            ("StatusNotification", {"timestamp": SECRET, "connectorStatus": "Available",
                                    "evseId": 1, "connectorId": 1}),
            (SECRET, {}),
            ("Heartbeat", f'[2, "raw", "Heartbeat", {{"x": 4711{"1" * 60}}}]'),
        ]
    answers = calls("ECHO", version, messages)
    assert all(answer[0] == 4 for answer in answers), answers
    for answer in answers:
        assert SECRET not in str(answer[2:]) and "4711" not in str(answer[2:]), answer


def test_a_value_no_column_holds_is_a_property_violation_not_retry_later():
    """A register of 2^63 Wh is a valid 2.0.1 number; PostgreSQL's column cannot hold it (the
    embedded database stores it). Either way the charger hears something final: retrying the
    same message could never succeed."""
    make_station("WIDE", ocpp_version="2.0.1")
    reading = {"evseId": 1, "meterValue": [{"timestamp": ago(seconds=5), "sampledValue": [
        {"value": 2**63, "measurand": "Energy.Active.Import.Register"}]}]}
    answer, heartbeat = calls("WIDE", "2.0.1", [("MeterValues", reading), ("Heartbeat", {})])
    assert answer[0] == 3 or answer[2] == "PropertyConstraintViolation", answer
    assert heartbeat[0] == 3
