"""Bad input gets the CALLERROR the negotiated version's spec names, and the socket survives."""

import json
from decimal import Decimal

import pytest
from asgiref.sync import async_to_sync

from csms.gateway import frames
from stations.models import MessageLog
from tests.support.chargers import ChargerSocket
from tests.support.personas import make_station

pytestmark = pytest.mark.django_db(transaction=True)

HEARTBEAT = json.dumps([2, "ok", "Heartbeat", {}])

# (frame sent, expected message id, code in 1.6, code in 2.0.1)
CASES = [
    ("not json at all", "-1", "FormationViolation", "RpcFrameworkError"),
    ('[2, "7", "Heartbeat"', "7", "FormationViolation", "RpcFrameworkError"),
    ('{"a": 1}', "-1", "FormationViolation", "RpcFrameworkError"),
    ("[2]", "-1", "FormationViolation", "RpcFrameworkError"),
    ('[2, 17, "Heartbeat", {}]', "-1", "FormationViolation", "RpcFrameworkError"),
    ('[2, "' + "x" * 37 + '", "Heartbeat", {}]', "x" * 37, "FormationViolation",
     "RpcFrameworkError"),
    ('[9, "8", "Heartbeat", {}]', "8", "FormationViolation", "MessageTypeNotSupported"),
    ('[2, "9", "Heartbeat", []]', "9", "FormationViolation", "FormatViolation"),
    ('[2, "10", "Heartbeat", {}, "extra"]', "10", "FormationViolation", "FormatViolation"),
    ('[2, "11", "NoSuchAction", {}]', "11", "NotImplemented", "NotImplemented"),
    # Actions the CSMS sends, never receives: known to the spec, not supported by us.
    ('[2, "12", "Reset", {"type": "Hard"}]', "12", "NotSupported", "NotSupported"),
    ('[2, "13", "Heartbeat", {"surprise": 1}]', "13", "FormationViolation", "FormatViolation"),
    # Not JSON (RFC 8259 has no NaN), though Python reads it, and a 2.0.1 DataTransfer's data
    # may be anything: PostgreSQL's jsonb refused to log it, the answer was InternalError, "retry
    # later", and the charger retried for ever.
    ('[2, "14", "DataTransfer", {"vendorId": "x", "data": NaN}]', "14", "FormationViolation",
     "RpcFrameworkError"),
    # Valid JSON, but PostgreSQL keeps no NUL in text or jsonb: it could never be logged.
    ('[2, "15", "DataTransfer", {"vendorId": "x", "data": "a\\u0000b"}]', "15",
     "FormationViolation", "FormatViolation"),
]

PAYLOAD_CASES = {
    "1.6": [
        ("Authorize", {}, "OccurenceConstraintViolation"),
        ("Authorize", {"idTag": 42}, "TypeConstraintViolation"),
        ("Authorize", {"idTag": "x" * 21}, "PropertyConstraintViolation"),
        ("StatusNotification", {"connectorId": 1, "errorCode": "NoError", "status": "Dancing"},
         "PropertyConstraintViolation"),
        ("StartTransaction", {"connectorId": 1, "idTag": "A", "meterStart": 0,
                              "timestamp": "yesterday"}, "PropertyConstraintViolation"),
    ],
    "2.0.1": [
        ("Authorize", {}, "OccurrenceConstraintViolation"),
        ("Authorize", {"idToken": {"idToken": 5, "type": "ISO14443"}},
         "TypeConstraintViolation"),
        ("Authorize", {"idToken": {"idToken": "A", "type": "Bogus"}},
         "PropertyConstraintViolation"),
        ("Heartbeat", {"x": 1}, "FormatViolation"),
    ],
}


@pytest.mark.parametrize("version", ["1.6", "2.0.1"])
def test_malformed_frames_get_spec_errors_and_connection_survives(version):
    make_station("BAD")

    async def flow():
        cp = ChargerSocket("BAD", version)
        assert await cp.connect()
        answers = []
        for text, *_ in CASES:
            answers.append(await cp.send_raw(text))
            # The connection is alive and still answers properly after every bad frame.
            assert (await cp.send_raw(HEARTBEAT))[0] == 3
        await cp.close()
        return answers

    answers = async_to_sync(flow)()
    for (text, message_id, code16, code201), answer in zip(CASES, answers, strict=True):
        expected = code16 if version == "1.6" else code201
        assert answer[:3] == [4, message_id, expected], text
        assert isinstance(answer[3], str) and isinstance(answer[4], dict)


@pytest.mark.parametrize("version", ["1.6", "2.0.1"])
def test_schema_errors_name_the_right_code_with_short_details(version):
    make_station("SCHEMA")

    async def flow():
        cp = ChargerSocket("SCHEMA", version)
        assert await cp.connect()
        answers = [await cp.call(action, payload) for action, payload, _ in
                   PAYLOAD_CASES[version]]
        await cp.close()
        return answers

    answers = async_to_sync(flow)()
    for (action, payload, code), answer in zip(PAYLOAD_CASES[version], answers, strict=True):
        assert answer[0] == 4 and answer[2] == code, (action, payload, answer)


def test_huge_frames_are_refused_without_echoing_them(settings):
    settings.OCPP = {**settings.OCPP, "MAX_FRAME_BYTES": 2000}
    make_station("HUGE")
    huge = json.dumps([2, "big", "DataTransfer", {"vendorId": "v", "data": "x" * 5000}])
    long_value = json.dumps([2, "long", "DataTransfer", {"vendorId": "v" * 1900}])

    async def flow():
        cp = ChargerSocket("HUGE", "2.0.1")
        assert await cp.connect()
        big = await cp.send_raw(huge)
        long = await cp.send_raw(long_value)
        assert (await cp.send_raw(HEARTBEAT))[0] == 3
        await cp.close()
        return big, long

    big, long = async_to_sync(flow)()
    assert big[:3] == [4, "big", "FormatViolation"]
    assert long[:3] == [4, "long", "PropertyConstraintViolation"]
    assert len(json.dumps(long)) < 400  # details never carry the payload back


def test_errors_are_in_the_message_log():
    make_station("LOGGED")

    async def flow():
        cp = ChargerSocket("LOGGED", "1.6")
        assert await cp.connect()
        await cp.send_raw("garbage")
        await cp.call("NoSuchAction", {})
        await cp.close()

    async_to_sync(flow)()
    rows = MessageLog.objects.filter(station_id="LOGGED").order_by("id")
    assert [(r.direction, r.message_type) for r in rows] == [
        ("in", 0), ("out", 4), ("in", 2), ("out", 4)]
    assert rows[1].payload[0] == "FormationViolation"


@pytest.mark.parametrize("text", [
    '[2,"1","Heartbeat",{}]',
    ' [ 2 ,\t"a,]\\"{" , "DataTransfer" ,\r\n {"vendorId": "v", "data": [1, {"y": "]"}]} \n ] ',
    '[2, "\\u00e9", "DataTransfer", {"vendorId": "\\u00e9", "data": 12.50}]',
])
def test_a_call_keeps_its_payload_as_the_charger_wrote_it(text):
    call = frames.parse(text)
    assert json.loads(call.payload_json, parse_float=Decimal) == call.payload
    assert call.payload_json in text and call.payload_json.startswith("{")


@pytest.mark.parametrize("version", ["1.6", "2.0.1"])
def test_the_log_keeps_each_payload_as_it_went_over_the_socket(version):
    """The writer logs the charger's payload text and the text of our answer, not the dicts
    written out again (csms/gateway/writer.py)."""
    make_station("AS-SENT")
    sent = {"vendorId": "ACME", "messageId": "x,y]", "data": "{\"a\": 1.50}"}

    async def flow():
        cp = ChargerSocket("AS-SENT", version)
        assert await cp.connect()
        answer = await cp.send_raw('[2 , "dt-1" ,"DataTransfer",\n' + json.dumps(sent) + " ]")
        await cp.close()
        return answer

    answer = async_to_sync(flow)()
    assert answer[:2] == [3, "dt-1"]
    call, result = MessageLog.objects.filter(station_id="AS-SENT", message_id="dt-1").order_by("id")
    assert (call.direction, call.message_type, call.payload) == ("in", 2, sent)
    assert (result.direction, result.message_type, result.payload) == ("out", 3, answer[2])
