"""Commands reach the charger through the channel layer and end with a persisted outcome."""

import uuid

import pytest
from asgiref.sync import async_to_sync, sync_to_async
from hypothesis import given
from hypothesis import strategies as st

from accounts.models import IdToken
from csms.gateway import frames
from stations.models import Call, MessageLog, Station, Transaction
from stations.services import commands
from tests.support.chargers import ChargerSocket, in_thread
from tests.support.personas import make_station

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def short_timeouts(settings):
    settings.OCPP = {**settings.OCPP, "CALL_TIMEOUT": 1}


async def connected(station_id: str, version: str) -> tuple[ChargerSocket, Station]:
    cp = ChargerSocket(station_id, version)
    assert await cp.connect()
    return cp, await Station.objects.aget(pk=station_id)


@pytest.mark.parametrize(("version", "action", "payload"), [
    ("1.6", "RemoteStartTransaction", {"connectorId": 2, "idTag": "CARD-9"}),
    ("2.0.1", "RequestStartTransaction", {"evseId": 2,
                                          "idToken": {"idToken": "CARD-9", "type": "Central"}}),
])
def test_remote_start_is_translated_and_accepted(version, action, payload):
    make_station("RS")
    IdToken.objects.create(value="CARD-9")

    async def flow():
        cp, station = await connected("RS", version)
        pending = in_thread(commands.send, station, commands.RemoteStart(evse=2, id_token="CARD-9"))
        frame = await cp.receive()
        await cp.answer(frame, {"status": "Accepted"})
        call = await pending
        await cp.close()
        return frame, call

    frame, call = async_to_sync(flow)()
    assert frame[0] == 2 and frame[2] == action
    assert {k: frame[3][k] for k in payload} == payload
    assert call.status == Call.Status.ACCEPTED and call.response == {"status": "Accepted"}
    assert call.action == action and call.completed_at is not None
    logged = MessageLog.objects.filter(station_id="RS", action=action).order_by("id")
    assert [(r.direction, r.message_type) for r in logged] == [("out", 2), ("in", 3)]


@pytest.mark.parametrize(("answer", "status", "code"), [
    ([3, {"status": "Rejected"}], Call.Status.REJECTED, ""),
    ([4, "NotImplemented", "no such thing", {}], Call.Status.ERROR, "NotImplemented"),
    ([3, {"status": "Maybe"}], Call.Status.ERROR, "InvalidResponse"),
])
def test_rejections_and_errors_are_recorded(answer, status, code):
    make_station("RJ")

    async def flow():
        cp, station = await connected("RJ", "1.6")
        pending = in_thread(commands.send, station, commands.Reset(hard=False))
        frame = await cp.receive()
        assert frame[2:] == ["Reset", {"type": "Soft"}]
        await cp.communicator.send_json_to([answer[0], frame[1], *answer[1:]])
        call = await pending
        await cp.close()
        return call

    call = async_to_sync(flow)()
    assert (call.status, call.error_code) == (status, code)


def test_unanswered_call_times_out_and_a_late_answer_does_not_accept_it(short_timeouts):
    make_station("SILENT")

    async def flow():
        cp, station = await connected("SILENT", "2.0.1")
        call = await in_thread(commands.send, station, commands.Unlock(evse=1, connector=1))
        frame = await cp.receive()
        await cp.answer(frame, {"status": "Unlocked"})  # too late
        assert (await cp.ok("Heartbeat", {}))["currentTime"]
        await cp.close()
        return call

    call = async_to_sync(flow)()
    assert call.status == Call.Status.TIMEOUT
    call.refresh_from_db()
    assert call.status == Call.Status.TIMEOUT


def test_station_not_connected():
    station = make_station("AWAY", ocpp_version="2.0.1")
    call = commands.send(station, commands.AvailabilityChange(evse=0, operative=False))
    assert call.status == Call.Status.NOT_CONNECTED
    never = make_station("NEVER")
    with pytest.raises(commands.CommandError, match="never connected"):
        commands.send(never, commands.Reset(hard=True))


def test_generic_call_is_validated_against_the_negotiated_version():
    station = make_station("GEN", ocpp_version="1.6", connected=True)
    with pytest.raises(commands.CommandError, match="PropertyConstraintViolation"):
        commands.call_send(station, "Reset", {"type": "Immediate"})  # a 2.0.1 word
    with pytest.raises(commands.CommandError, match="has no action 'Teleport'"):
        commands.call_send(station, "Teleport", {})
    assert not Call.objects.exists()


def test_one_outstanding_call_at_a_time_others_queue():
    make_station("QUEUE")

    async def flow():
        cp, station = await connected("QUEUE", "1.6")
        first = in_thread(commands.call_send, station, "GetConfiguration", {})
        second = in_thread(commands.call_send, station, "ClearCache", {})
        frame_a = await cp.receive()
        # While the first is unanswered, nothing else arrives.
        assert await cp.communicator.receive_nothing(timeout=0.5)
        await cp.answer(frame_a, {"configurationKey": [], "unknownKey": []}
                        if frame_a[2] == "GetConfiguration" else {"status": "Accepted"})
        frame_b = await cp.receive()
        await cp.answer(frame_b, {"configurationKey": [], "unknownKey": []}
                        if frame_b[2] == "GetConfiguration" else {"status": "Accepted"})
        calls = [await first, await second]
        await cp.close()
        return {frame_a[2], frame_b[2]}, calls

    actions, calls = async_to_sync(flow)()
    assert actions == {"GetConfiguration", "ClearCache"}
    assert [c.status for c in calls] == [Call.Status.ACCEPTED, Call.Status.ACCEPTED]


def test_disconnect_ends_the_outstanding_call_as_timed_out():
    make_station("DROP")

    async def flow():
        cp, station = await connected("DROP", "1.6")
        pending = in_thread(commands.send, station,
                            commands.MessageTrigger(message="StatusNotification", evse=1))
        frame = await cp.receive()
        assert frame[2:] == ["TriggerMessage", {"requestedMessage": "StatusNotification",
                                                "connectorId": 1}]
        await cp.close()
        return await pending

    assert async_to_sync(flow)().status == Call.Status.TIMEOUT


def test_remote_stop_uses_the_chargers_transaction_id():
    make_station("STOP")

    async def flow():
        cp, station = await connected("STOP", "2.0.1")
        tx = await Transaction.objects.acreate(station=station, transaction_id="abc-1",
                                               started_at="2026-11-24T10:00Z")
        pending = in_thread(commands.send, station, commands.RemoteStop(tx.transaction_id))
        frame = await cp.receive()
        await cp.answer(frame, {"status": "Accepted"})
        await pending
        await cp.close()
        return frame

    assert async_to_sync(flow)()[2:] == ["RequestStopTransaction", {"transactionId": "abc-1"}]


def test_enqueued_call_is_sent_without_anyone_waiting():
    make_station("BG")

    async def flow():
        cp, station = await connected("BG", "2.0.1")
        call = await sync_to_async(commands.call_enqueue)(station, "ClearCache", {})
        assert call.status == Call.Status.PENDING
        frame = await cp.receive()
        await cp.answer(frame, {"status": "Accepted"})
        assert (await cp.ok("Heartbeat", {}))["currentTime"]  # the answer was processed
        await cp.close()
        return frame, call

    frame, call = async_to_sync(flow)()
    assert frame[1:] == [call.message_id, "ClearCache", {}]
    call.refresh_from_db()
    assert call.status == Call.Status.ACCEPTED


def test_calls_whose_route_was_lost_expire_as_timed_out():
    station = make_station("LOST", ocpp_version="1.6", connected=True)
    old = Call.objects.create(station=station, action="ClearCache", payload={})
    Call.objects.filter(pk=old.pk).update(created_at="2026-01-01T00:00Z")
    fresh = Call.objects.create(station=station, action="ClearCache", payload={})
    assert commands.expire_stale_calls() == 1
    old.refresh_from_db()
    fresh.refresh_from_db()
    assert (old.status, fresh.status) == (Call.Status.TIMEOUT, Call.Status.PENDING)


def test_commands_the_version_cannot_express_are_refused_readably():
    station = make_station("V16", ocpp_version="1.6", connected=True)
    with pytest.raises(commands.CommandError, match="at most 20 characters"):
        commands.send(station, commands.RemoteStart(evse=1, id_token="X" * 21))
    with pytest.raises(commands.CommandError, match="has no action"):
        commands.call_send(station, "../../v201/schemas/Reset", {})
    assert not Call.objects.exists()


VARIABLE = st.fixed_dictionaries({
    "component": st.fixed_dictionaries({"name": st.text(min_size=1, max_size=50)}),
    "variable": st.fixed_dictionaries({"name": st.text(min_size=1, max_size=50)}),
})


@given(items=st.lists(VARIABLE, min_size=1, max_size=60),
       most_items=st.none() | st.integers(1, 20), most_bytes=st.none() | st.integers(50, 2000))
def test_a_request_split_keeps_its_items_in_order_within_the_limits(items, most_items,
                                                                    most_bytes):
    parts = commands.request_split("GetVariables", {"getVariableData": items},
                                   "getVariableData", most_items, most_bytes)

    assert [item for part in parts for item in part["getVariableData"]] == items
    for part in parts:
        assert part["getVariableData"]
        if most_items is not None:
            assert len(part["getVariableData"]) <= most_items
        # The frame as the gateway writes it, with a message id as long as ours.
        frame = frames.call_frame(str(uuid.uuid4()), "GetVariables", part)
        if most_bytes is not None and len(part["getVariableData"]) > 1:
            assert len(frame.encode()) <= most_bytes
