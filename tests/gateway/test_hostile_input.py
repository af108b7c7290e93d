"""Whatever a charger sends, the gateway answers it in time with a CALLRESULT or the CALLERROR
its version's spec names, never InternalError ("retry later": a charger retries that for ever),
and the process stays responsive.

Hypothesis takes each block's example of every message a charger sends (the ones the message
table's test drives) and puts hostile values in its fields: numbers no column or conversion
holds (2^63, 10^40, 1e999999999 as a literal), lone surrogates and NUL, timestamps no clock
reads (year 1, 9999, 2300, offsets that overflow), over-long strings. The frames go over a real
socket to uvicorn; a number that once froze a whole server process goes to daphne as a process.
"""

import asyncio
import json
import time
import urllib.request
from typing import Any

import pytest
from asgiref.sync import async_to_sync
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from stations.models import Station
from tests.gateway.test_message_table import RECEIVED
from tests.support.chargers import RealCharger, serving
from tests.support.personas import make_station
from tests.support.servers import daphne

pytestmark = pytest.mark.django_db(transaction=True)

ANSWER_WITHIN = 5  # seconds: a frame's answer, however hostile the frame
RAW = "\x01raw:"  # a string placeholder for a number literal json.dumps cannot write

HOSTILE_NUMBERS = [-1, -(2**31) - 1, 2**31, 2**63, -(2**63) - 1, 10**40, 10**41]
NUMBER_LITERALS = ["1e999999999", "-1E+999999999", "1e-999999999", "1e309", "9" * 41,
                   "0." + "1" * 60, "1.5e308", "12.34"]
HOSTILE_TEXT = ["\ud800", "a\udfffb", "\udc00\ud800", "x\x00y", "", "x" * 5000, "\U0001f600" * 30]
HOSTILE_TIMES = ["0001-01-01T00:00:00+01:00", "9999-12-31T23:59:59-23:59", "2300-01-01T00:00:00Z",
                 "1970-01-01T00:00:00Z", "0001-01-01T00:00:00Z", "2026-02-30T10:00:00Z",
                 "2026-11-24T10:00:00+24:00", "9999-12-31T23:59:59.999999Z"]

hostile_values = st.one_of(
    st.sampled_from(HOSTILE_NUMBERS), st.integers(),
    st.sampled_from(NUMBER_LITERALS).map(lambda literal: RAW + literal),
    st.floats(allow_nan=False, allow_infinity=False),
    st.sampled_from(HOSTILE_TEXT), st.text(st.characters(codec=None), max_size=40),
    st.sampled_from(HOSTILE_TIMES),
    st.datetimes().map(lambda moment: moment.isoformat() + "Z"),
)


def _leaves(value: Any, path: tuple = ()) -> list[tuple]:
    if isinstance(value, dict):
        return [leaf for key, item in value.items() for leaf in _leaves(item, (*path, key))]
    if isinstance(value, list):
        return [leaf for index, item in enumerate(value) for leaf in _leaves(item, (*path, index))]
    return [path]


def _replaced(value: Any, path: tuple, new: Any) -> Any:
    if not path:
        return new
    if isinstance(value, dict):
        return {**value, path[0]: _replaced(value[path[0]], path[1:], new)}
    return [_replaced(item, path[1:], new) if index == path[0] else item
            for index, item in enumerate(value)]


@st.composite
def hostile_frame(draw: st.DrawFn, version: str) -> str:
    """A CALL of a message a charger of `version` sends, one to three of its fields hostile."""
    action = draw(st.sampled_from(sorted(a for v, a in RECEIVED if v == version)))
    payload = RECEIVED[(version, action)]
    leaves = _leaves(payload)
    for _ in range(draw(st.integers(1, 3)) if leaves else 0):
        payload = _replaced(payload, draw(st.sampled_from(leaves)), draw(hostile_values))
    text = json.dumps([2, "m", action, payload])  # ASCII: a surrogate goes as its \u escape
    while RAW in text:
        start = text.index('"' + json.dumps(RAW)[1:-1])
        end = text.index('"', start + 1) + 1
        text = text[:start] + json.loads(text[start:end])[len(RAW):] + text[end:]
    return text


def live(port: int) -> int:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/health/live", timeout=2) as answer:
        return answer.status


def answers(port: int, station_id: str, version: str, texts: list[str]) -> list[tuple]:
    """Each frame's answer (message type, code) and the seconds it took."""
    async def flow() -> list[tuple]:
        found = []
        async with RealCharger.connected(port, station_id, version) as charger:
            for text in texts:
                started = time.monotonic()
                reply = await charger.send_raw(text)
                took = time.monotonic() - started
                found.append((reply[0], reply[2] if reply[0] == 4 else "", took, text[:300]))
        return found
    return async_to_sync(flow)()


def assert_answered_by_the_spec(found: list[tuple]) -> None:
    for message_type, code, took, text in found:
        assert message_type in (3, 4), text
        assert code != "InternalError", text
        assert took < ANSWER_WITHIN, (took, text)


@pytest.mark.parametrize("version", ["1.6", "2.0.1"])
@settings(max_examples=12, deadline=None, database=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(data=st.data())
def test_hostile_fields_get_a_result_or_a_spec_callerror_in_time(version, data):
    station_id = f"HOSTILE-{version}"
    if not Station.objects.filter(pk=station_id).exists():  # Hypothesis runs this many times
        make_station(station_id)
    texts = data.draw(st.lists(hostile_frame(version), min_size=10, max_size=10))

    async def flow() -> tuple[list[tuple], int]:
        async with serving() as port:
            found = await asyncio.to_thread(answers, port, station_id, version, texts)
            return found, await asyncio.to_thread(live, port)

    found, status = async_to_sync(flow)()
    assert_answered_by_the_spec(found)
    assert status == 200


@pytest.mark.multiprocess
def test_a_huge_exponent_never_freezes_a_server_process():
    """Once, `1e999999999` anywhere in a frame, even one then refused, was turned into an int
    on the way to the message log, on the ORM thread: the process answered nothing for
    minutes, /health/live included."""
    make_station("EXPONENT")
    texts = [f'[2,"{n}","DataTransfer",{{"vendorId":"v","data":"x","extra":{literal}}}]'
             for n, literal in enumerate(["1e999999999", "-1e99999999", "1E+999999", "9" * 5000])]
    texts += [f'[2,"h{n}","Heartbeat",{{"x":{literal}}}]'
              for n, literal in enumerate(["1e999999999", "1e-999999999"])]
    with daphne() as (port, _):
        found = answers(port, "EXPONENT", "1.6", texts)
        started = time.monotonic()
        assert live(port) == 200
        assert time.monotonic() - started < 1
    assert_answered_by_the_spec(found)
    assert {code for _, code, _, _ in found} <= {"TypeConstraintViolation", "FormationViolation"}
