"""The message table itself: it agrees with the `ocpp` library's schemas, the coverage page is
written from it, and every entry it claims for a spoken version is reached on a real socket:
each handler answers its example with a valid CALLRESULT, each declared-unsupported message
is answered NotSupported, and each command is sent in its version's words and its answer read.

The examples come from each block's own test module (tests/gateway/blocks/test_<block>.py)."""

from importlib import import_module

import pytest
from asgiref.sync import async_to_sync

from accounts.models import IdToken
from csms.gateway import coverage, frames
from csms.gateway.frames import CALL, CALLRESULT
from csms.gateway.table import SPOKEN, TABLE, Direction, block_modules
from stations.models import Call, MessageLog, Station
from stations.services import commands
from tests.support import ROOT
from tests.support.chargers import RealCharger, in_thread, serving
from tests.support.examples import Examples
from tests.support.personas import make_station


def _examples() -> dict[str, Examples]:
    found = {}
    for block in block_modules():
        try:
            module = import_module(f"tests.gateway.blocks.test_{block}")
        except ModuleNotFoundError:
            continue  # a block that only declares what it does not do yet
        found[block] = module.EXAMPLES
    return found


EXAMPLES = _examples()
RECEIVED = {key: payload for examples in EXAMPLES.values()
            for key, payload in examples.received.items()}
SENT = {key: pair for examples in EXAMPLES.values() for key, pair in examples.sent.items()}
SPOKEN_ENTRIES = sorted((key, entry) for key, entry in TABLE.entries.items() if key[0] in SPOKEN)
HANDLED = sorted((version, action) for (version, action, _), entry in SPOKEN_ENTRIES
                 if entry.handler is not None)
REFUSED = sorted((version, action) for (version, action, direction), entry in SPOKEN_ENTRIES
                 if direction == Direction.FROM_CHARGER and entry.handler is None)
BUILT = sorted(((version, command) for (version, command), entry in TABLE.by_command.items()
                if version in SPOKEN), key=lambda key: (key[0], key[1].__name__))


def test_the_table_agrees_with_the_schemas():
    assert TABLE.check() == []


def test_the_coverage_page_is_written_from_the_table():
    written = (ROOT / coverage.PAGE).read_text(encoding="utf-8")
    assert written == coverage.markdown(TABLE), "run: python manage.py ocpp_coverage"


def test_every_message_handled_or_sent_has_an_example_in_its_blocks_tests():
    assert sorted(set(HANDLED) - RECEIVED.keys()) == []
    assert sorted(set(BUILT) - SENT.keys(), key=str) == []
    # and no example names what the table does not claim
    assert sorted(RECEIVED.keys() - set(HANDLED)) == []
    assert sorted(SENT.keys() - set(BUILT), key=str) == []


def test_a_block_owns_the_actions_its_module_registers():
    """The entries' blocks are the modules in csms/gateway/blocks/, none of them empty."""
    owners = {entry.block for entry in TABLE.entries.values()}
    assert owners == set(block_modules())


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize(("version", "action"), HANDLED, ids="-".join)
def test_each_handler_answers_on_a_real_socket(version, action):
    make_station("TABLE-IN")
    payload = RECEIVED[(version, action)]

    async def flow() -> list:
        async with serving() as port, \
                RealCharger.connected(port, "TABLE-IN", version) as charger:
            return await charger.call(action, payload)

    reply = async_to_sync(flow)()
    assert reply[0] == CALLRESULT, reply
    frames.validate(CALLRESULT, action, reply[2], version)
    # Answered after its commit: the frame is in the log.
    assert MessageLog.objects.filter(station_id="TABLE-IN", action=action,
                                     message_type=CALL).exists()


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize(("version", "action"), REFUSED, ids="-".join)
def test_each_unsupported_message_is_answered_not_supported(version, action):
    make_station("TABLE-NO")

    async def flow() -> list:
        async with serving() as port, \
                RealCharger.connected(port, "TABLE-NO", version) as charger:
            return await charger.call(action, {})

    reply = async_to_sync(flow)()
    assert reply[0] == frames.CALLERROR and reply[2] == "NotSupported", reply


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize(("version", "command"), BUILT,
                         ids=lambda value: getattr(value, "__name__", value))
def test_each_command_is_sent_and_its_answer_read_on_a_real_socket(version, command):
    make_station("TABLE-OUT")
    IdToken.objects.create(value="CARD-1")  # remote starts are sent only with a valid card
    example, answer = SENT[(version, command)]
    entry = TABLE.by_command[(version, command)]

    async def flow() -> tuple[list, Call]:
        async with serving() as port, \
                RealCharger.connected(port, "TABLE-OUT", version) as charger:
            station = await Station.objects.aget(pk="TABLE-OUT")
            pending = in_thread(commands.send, station, example)
            frame = await charger.receive()
            await charger.answer(frame, answer)
            return frame, await pending

    frame, call = async_to_sync(flow)()
    assert frame[0] == CALL and frame[2] == entry.action
    frames.validate(CALL, entry.action, frame[3], version)
    assert call.status == Call.Status.ACCEPTED, (call.status, call.error_description)
    assert call.response == answer


def test_a_command_a_version_has_no_message_for_is_refused_readably(db):
    station = make_station("TABLE-16", ocpp_version="1.6", connected=True)
    with pytest.raises(commands.CommandError, match=r"OCPP 1\.6 has no message for a session"):
        commands.send(station, commands.CostUpdate(transaction_id="1", total=1))
