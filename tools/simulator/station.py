"""The station model every simulated charger shares, whatever OCPP version it speaks.

A station here is its configuration, connectors, sessions, energy meters, configuration store,
local authorization list and queue of transaction messages, plus the machinery that carries
frames over one WebSocket (one outstanding CALL at a time, answers to the CSMS's CALLs) and the
run loop of a real station (connect with backoff, boot, heartbeats, sessions).

What a version changes is left to its subclass (v16.Charger16, v201.Charger201): the shapes of
the messages it sends, which CALLs it answers and how, and the names of its configuration keys
and error codes. Those differences are class attributes and overridden methods, never a
version test per message: a benchmark runs thousands of chargers in one process.
``VirtualCharger(config)`` builds the subclass of ``config.version``.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import inspect
import json
import logging
import random
import time
import uuid
from abc import ABC, abstractmethod
from collections import deque
from collections.abc import Awaitable, Callable, Coroutine, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, ClassVar, Literal
from urllib.parse import quote

from websockets.asyncio.client import ClientConnection
from websockets.asyncio.client import connect as ws_connect
from websockets.exceptions import ConnectionClosed, WebSocketException
from websockets.typing import Subprotocol

logger = logging.getLogger(__name__)

OcppVersion = Literal["1.6", "2.0.1"]
Payload = dict[str, Any]
FollowUp = Callable[[], Coroutine[Any, Any, object]]
# A handler's answer to a CALL of the CSMS: the CALLRESULT payload, and what the charger does
# once that answer is sent (a remote start's session, a triggered message), if anything.
Answer = tuple[Payload, FollowUp | None]
Handler = Callable[[Payload], Answer]
CallHook = Callable[[Payload], Payload | Awaitable[Payload | None] | None]
StateHook = Callable[["VirtualCharger", str], None]
# (measurand, value, unit, location) of one sampled value, before a version gives it its shape.
Reading = tuple[str, float, str, str]

CALL, CALLRESULT, CALLERROR = 2, 3, 4
BATTERY_WH = 60_000  # the simulated car's battery, only used to make SoC move plausibly
LOCAL_LIST_MAX = 100
MAX_BOOT_RETRY_S = 300.0
DEFAULT_BOOT_RETRY_S = 10.0

MEASURANDS = (
    ("Energy.Active.Import.Register", "Wh"),
    ("Power.Active.Import", "W"),
    ("Current.Import", "A"),
    ("Voltage", "V"),
)


def utc_timestamp() -> str:
    """Now as OCPP wants it: UTC, millisecond precision, ``Z`` suffix."""
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class CallError(Exception):
    """The other side answered a CALL with a CALLERROR (or a handler wants to answer with one)."""

    def __init__(self, code: str, description: str = "", details: Payload | None = None) -> None:
        super().__init__(f"{code}: {description}")
        self.code = code
        self.description = description
        self.details = details if details is not None else {}


class DeliveryError(Exception):
    """A CALL got no answer: not connected, connection lost, or no answer in time."""


class NotConnected(DeliveryError):
    pass


class CallTimeout(DeliveryError):
    pass


@dataclass
class ChargerConfig:
    station_id: str
    version: OcppVersion = "1.6"
    url: str = "ws://127.0.0.1:8000/ocpp/"
    password: str | None = None
    connectors: int = 1
    id_tokens: list[str] = field(default_factory=lambda: ["SIMTOKEN"])
    meter_interval: float = 60.0
    session_every: float | None = None
    session_length: float = 600.0
    power_w: float = 7400.0
    voltage_v: float = 230.0
    vendor: str = "SimVendor"
    model: str = "VirtualCharger"
    serial: str = ""  # empty: the station id (truncated to the 25 characters OCPP allows)
    firmware: str = "1.0.0"
    connect_timeout: float = 10.0
    call_timeout: float = 30.0
    reconnect_min: float = 1.0
    reconnect_max: float = 30.0
    # A dropped connection is not a reboot, so by default no new BootNotification after it.
    boot_on_reconnect: bool = False
    # A transaction message answered with a CALLERROR is sent again, up to tx_attempts times in
    # all, waiting tx_retry_interval x the attempts so far in between (1.6 §3.7
    # TransactionMessageAttempts/RetryInterval, 2.0.1 E13 MessageAttempts/MessageAttemptInterval);
    # then it is discarded, as a real charger does.
    tx_attempts: int = 3
    tx_retry_interval: float = 5.0

    @property
    def endpoint(self) -> str:
        return self.url.rstrip("/") + "/" + quote(self.station_id, safe="")

    @property
    def subprotocol(self) -> str:
        return "ocpp" + self.version


@dataclass
class Metrics:
    connects: int = 0
    connect_failures: int = 0
    disconnects: int = 0
    boots_accepted: int = 0
    calls: int = 0
    call_errors: int = 0
    timeouts: int = 0
    latencies: dict[str, list[float]] = field(default_factory=dict)  # action -> round trips (s)

    def record(self, action: str, seconds: float) -> None:
        self.latencies.setdefault(action, []).append(seconds)

    def merge(self, other: Metrics) -> None:
        self.connects += other.connects
        self.connect_failures += other.connect_failures
        self.disconnects += other.disconnects
        self.boots_accepted += other.boots_accepted
        self.calls += other.calls
        self.call_errors += other.call_errors
        self.timeouts += other.timeouts
        for action, values in other.latencies.items():
            self.latencies.setdefault(action, []).extend(values)

    def percentile(self, q: float, action: str | None = None) -> float | None:
        """Nearest-rank percentile (0 < q <= 100) of round trips in seconds; None without data."""
        if action is None:
            values = sorted(v for vs in self.latencies.values() for v in vs)
        else:
            values = sorted(self.latencies.get(action, []))
        if not values:
            return None
        rank = max(1, -(-len(values) * q // 100))  # ceil without floats drifting
        return values[int(rank) - 1]


@dataclass
class Session:
    connector: int
    id_token: str
    token_type: str
    transaction_id: int | str | None  # 1.6: None until StartTransaction is answered
    meter_start: int
    started_at: float  # monotonic
    soc_start: float
    remote_start_id: int | None = None
    begin_sample: Payload = field(default_factory=dict)
    seq_no: int = 0
    driver: asyncio.Task[None] | None = None
    stop_reason: str | None = None
    stop_requested: asyncio.Event = field(default_factory=asyncio.Event)
    ending: bool = False


@dataclass
class Setting:
    """One entry of the configuration store behind Get/ChangeConfiguration (1.6) and
    Get/SetVariables (2.0.1)."""

    value: str
    readonly: bool = False
    kind: Literal["number", "bool", "text"] = "text"

    def accepts(self, value: str) -> bool:
        if self.kind == "bool":
            return value.lower() in ("true", "false")
        if self.kind == "number":
            try:
                return float(value) >= 0
            except ValueError:
                return False
        return True


@dataclass
class TxMessage:
    """A transaction message: kept until answered, re-sent in order after a reconnect."""

    action: str
    payload: Payload
    session: Session
    response: Payload | None = None
    error: CallError | None = None
    attempts: int = 0


def number_text(value: float) -> str:
    """A number as configuration values and 1.6 sampled values write it: no ``.0``."""
    return str(int(value)) if float(value).is_integer() else str(value)


def sampled_measurands() -> str:
    """The measurands every sample carries, as the configuration store lists them."""
    return ",".join([m for m, _ in MEASURANDS] + ["SoC"])


def _backoff(minimum: float, maximum: float, rng: random.Random) -> Iterator[float]:
    """Doubling reconnect delays; the jitter keeps a restarted CSMS from being hit by every
    charger in the same instant."""
    delay = minimum
    while True:
        yield delay * rng.uniform(0.5, 1.0)
        delay = min(delay * 2, maximum)


async def wait_event(event: asyncio.Event, seconds: float) -> bool:
    """Sleep up to ``seconds``; True as soon as ``event`` is set."""
    # asyncio.timeout rather than wait_for here and below: on Python 3.11 wait_for can swallow a
    # cancellation that arrives just as the awaited thing completes, and the task then never
    # stops (seen with thousands of chargers shutting down at once).
    try:
        async with asyncio.timeout(max(seconds, 0)):
            await event.wait()
    except TimeoutError:
        return False
    return True


class VirtualCharger(ABC):
    """A simulated charging station; ``VirtualCharger(config)`` is a ``Charger16`` or a
    ``Charger201`` according to ``config.version``."""

    # Set by each version's subclass.
    version: ClassVar[OcppVersion]
    v16: ClassVar[bool]
    # CALLERROR codes: a CALL that is not [2, id, action, {payload}]; a frame whose message type
    # is not 2, 3 or 4; a payload without a required field (the specs spell them differently).
    FORMAT_ERROR: ClassVar[str]
    UNKNOWN_TYPE_ERROR: ClassVar[str]
    OCCURRENCE_ERROR: ClassVar[str]
    # Configuration keys of the store (settings) this model reads.
    HEARTBEAT_KEY: ClassVar[str]
    METER_KEY: ClassVar[str]
    REMOTE_AUTH_KEY: ClassVar[str]
    # Fields whose names differ: authorization info in answers and local list entries, and the
    # local list's version number.
    ID_INFO_KEY: ClassVar[str]
    LIST_VERSION_KEY: ClassVar[str]
    # Connector statuses of a session: while it starts, while it charges (None: no change) and
    # once it is stopped until the next idle status (None: straight to idle).
    STARTING_STATUS: ClassVar[str]
    CHARGING_STATUS: ClassVar[str | None]
    FINISHING_STATUS: ClassVar[str | None]

    _classes: ClassVar[dict[str, type[VirtualCharger]]] = {}

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "version" in cls.__dict__:  # a subclass of a version's class must not replace it
            VirtualCharger._classes[cls.version] = cls

    def __new__(cls, config: ChargerConfig, on_state: StateHook | None = None) -> VirtualCharger:
        if cls is VirtualCharger:
            try:
                cls = VirtualCharger._classes[config.version]
            except KeyError:
                raise ValueError(f"unknown OCPP version {config.version!r}") from None
        return super().__new__(cls)

    def __init__(self, config: ChargerConfig, on_state: StateHook | None = None) -> None:
        if config.version != self.version:
            raise ValueError(f"{type(self).__name__} speaks OCPP {self.version}, "
                             f"not {config.version}")
        if config.connectors < 1:
            raise ValueError("a charger needs at least one connector")
        self.config = config
        self.on_state = on_state
        self.on_call: dict[str, CallHook] = {}
        self.received_calls: list[tuple[str, Payload]] = []
        self.metrics = Metrics()
        self.state = "idle"
        self.boot_status: str | None = None
        self.sessions: dict[int, Session] = {}
        self.connector_status = dict.fromkeys(self._connectors(), "Available")
        self.energy_wh = dict.fromkeys(self._connectors(), 0.0)  # per-connector meter register
        self.local_list: dict[str, Payload] = {}
        self.local_list_version = 0
        # 2.0.1 CostUpdated: the last running total (taxes included) the CSMS told, per
        # transaction id, as a charger with a display would show it.
        self.costs: dict[str, float] = {}
        self.settings = self._initial_settings(config)
        self._metered_at = dict.fromkeys(self._connectors(), time.monotonic())
        self._inoperative: set[int] = set()
        self._claimed: set[int] = set()  # connectors promised to a session that is starting
        self._rng = random.Random(config.station_id)  # reproducible runs per station
        self._ws: ClientConnection | None = None
        self._reader: asyncio.Task[None] | None = None
        self._pending: tuple[str, asyncio.Future[list[Any]]] | None = None
        self._call_lock = asyncio.Lock()
        self._tx_lock = asyncio.Lock()
        self._tx_queue: deque[TxMessage] = deque()
        self._tasks: set[asyncio.Task[Any]] = set()
        self._boot_accepted = asyncio.Event()
        self._boot_reason = "PowerUp"  # what the next boot tells (2.0.1 sends it)
        self._handlers = self._handler_table()

    # ------------------------------------------------- what a version defines

    @staticmethod
    @abstractmethod
    def _initial_settings(config: ChargerConfig) -> dict[str, Setting]:
        """The configuration store, under this version's key names."""

    def _handler_table(self) -> dict[str, Handler]:
        """The CSMS's CALLs this version answers, by action: here those both versions name
        alike; a version adds its own."""
        return {
            "Reset": self._on_reset,
            "UnlockConnector": self._on_unlock,
            "ChangeAvailability": self._on_change_availability,
            "TriggerMessage": self._on_trigger,
            "SendLocalList": self._on_send_local_list,
            "GetLocalListVersion": self._on_get_local_list_version,
            "ClearCache": self._on_clear_cache,
            "DataTransfer": self._on_data_transfer,
        }

    @abstractmethod
    def _on_unlock(self, p: Payload) -> Answer: ...

    @abstractmethod
    def _on_change_availability(self, p: Payload) -> Answer: ...

    @abstractmethod
    def _on_trigger(self, p: Payload) -> Answer: ...

    @abstractmethod
    def _boot_payload(self, serial: str) -> Payload: ...

    @abstractmethod
    def _status_payload(self, connector: int, status: str, error_code: str) -> Payload: ...

    @abstractmethod
    def _authorize_payload(self, token: str) -> Payload: ...

    @abstractmethod
    def _sampled_values(self, readings: list[Reading], context: str) -> list[Payload]: ...

    @abstractmethod
    def _new_transaction_id(self) -> str | None:
        """The id of a session starting now; None when the CSMS hands it out."""

    @abstractmethod
    def _start_message(self, session: Session) -> tuple[str, Payload]:
        """The transaction message (action, payload) that starts ``session``."""

    @abstractmethod
    def _stop_message(
        self, session: Session, reason: str, end_sample: Payload, meter_stop: int
    ) -> tuple[str, Payload]:
        """The transaction message (action, payload) that ends ``session``."""

    @abstractmethod
    async def send_meter_values(
        self, connector: int, *, context: str = "Sample.Periodic"
    ) -> Payload | None:
        """Meter values of one connector; during a session they are transaction messages
        (queued while offline, in which case this returns None)."""

    @abstractmethod
    def _tx_payload(self, message: TxMessage) -> Payload | None:
        """The payload to send for a queued transaction message, as known now; None when it
        can no longer be sent."""

    @abstractmethod
    def _on_tx_response(self, message: TxMessage) -> None:
        """Learn what the answer to a transaction message tells (transaction id, card status)."""

    @staticmethod
    @abstractmethod
    def _entry_token(entry: Payload) -> str:
        """The card of a local authorization list entry."""

    # ----------------------------------------------------------------- state

    @property
    def connected(self) -> bool:
        return self._ws is not None

    @property
    def online(self) -> bool:
        """Connected and accepted: only then may anything but BootNotification be sent."""
        return self.connected and self.boot_status == "Accepted"

    @property
    def queued(self) -> list[tuple[str, Payload]]:
        """Transaction messages not answered yet, oldest first."""
        return [(m.action, m.payload) for m in self._tx_queue]

    @property
    def heartbeat_interval(self) -> float:
        return float(self.settings[self.HEARTBEAT_KEY].value)

    @property
    def meter_interval(self) -> float:
        return float(self.settings[self.METER_KEY].value)

    def _connectors(self) -> range:
        return range(1, self.config.connectors + 1)

    def _set_state(self, state: str) -> None:
        self.state = state
        if self.on_state is not None:
            self.on_state(self, state)

    def _idle_status(self, connector: int) -> str:
        return "Unavailable" if connector in self._inoperative else "Available"

    def _is_free(self, connector: int) -> bool:
        return (
            connector in self.connector_status
            and connector not in self.sessions
            and connector not in self._claimed
            and connector not in self._inoperative
        )

    def _free_connector(self, requested: int | None) -> int | None:
        if requested is not None:
            return requested if self._is_free(requested) else None
        return next((c for c in self._connectors() if self._is_free(c)), None)

    def _session_by_transaction(self, transaction_id: object) -> Session | None:
        return next((s for s in self.sessions.values() if s.transaction_id == transaction_id), None)

    # ------------------------------------------------------------ connection

    async def connect(self) -> None:
        """Open the WebSocket (OCPP subprotocol, Basic auth when configured) and start reading."""
        if self._ws is not None:
            raise RuntimeError("already connected")
        cfg = self.config
        headers = {}
        if cfg.password is not None:
            secret = base64.b64encode(f"{cfg.station_id}:{cfg.password}".encode()).decode()
            headers["Authorization"] = f"Basic {secret}"
        self._set_state("connecting")
        try:
            ws = await ws_connect(
                cfg.endpoint,
                subprotocols=[Subprotocol(cfg.subprotocol)],
                additional_headers=headers,
                open_timeout=cfg.connect_timeout,
                close_timeout=2,
                proxy=None,  # connect exactly where told, whatever the environment says
                compression=None,  # OCPP frames are small; deflate would cost memory per charger
            )
            if ws.subprotocol != cfg.subprotocol:
                await ws.close()
                raise ConnectionError(f"server did not accept subprotocol {cfg.subprotocol}")
        except Exception as exc:
            self.metrics.connect_failures += 1
            self._set_state(f"connect failed ({exc})")
            raise
        self.metrics.connects += 1
        self._ws = ws
        self._reader = asyncio.create_task(self._read_loop(ws), name=f"{cfg.station_id} reader")
        self._set_state("connected")

    async def close(self) -> None:
        """Stop everything this charger runs (sessions are abandoned, not ended) and disconnect."""
        current = asyncio.current_task()
        tasks = [t for t in self._tasks if t is not current]
        for task in tasks:
            task.cancel()
        if tasks:
            _, stuck = await asyncio.wait(tasks, timeout=self.config.call_timeout)
            if stuck:
                logger.warning(
                    "%s: %d tasks ignored cancellation", self.config.station_id, len(stuck)
                )
        await self._disconnect()

    def drop_connection(self) -> None:
        """Cut the TCP connection without a closing handshake, as a network failure would.

        Sessions go on, their messages are queued; under run() the charger reconnects.
        """
        if self._ws is not None:
            self._ws.transport.abort()

    async def _disconnect(self) -> None:
        ws, reader = self._ws, self._reader
        if ws is not None:
            await ws.close()
        if reader is not None:
            await asyncio.wait({reader})  # the reader clears the connection state as it ends

    async def _read_loop(self, ws: ClientConnection) -> None:
        try:
            async for raw in ws:
                self._on_frame(ws, raw)
        except ConnectionClosed:
            pass
        finally:
            if self._ws is ws:
                self._ws = None
            self.metrics.disconnects += 1
            if self._pending is not None and not self._pending[1].done():
                self._pending[1].set_exception(NotConnected("connection lost"))
            self._set_state("disconnected")

    def _on_frame(self, ws: ClientConnection, raw: str | bytes) -> None:
        try:
            frame = json.loads(raw)
        except ValueError:
            logger.warning("%s: ignoring non-JSON frame", self.config.station_id)
            return
        if not (isinstance(frame, list) and len(frame) >= 3 and isinstance(frame[1], str)):
            logger.warning("%s: ignoring malformed frame %.200s", self.config.station_id, raw)
            return
        kind, msg_id = frame[0], frame[1]
        if kind == CALL:
            if len(frame) == 4 and isinstance(frame[2], str) and isinstance(frame[3], dict):
                self._spawn(self._answer(ws, msg_id, frame[2], frame[3]), f"answer {frame[2]}")
            else:
                self._spawn(self._reply_error(ws, msg_id, self.FORMAT_ERROR), "reply error")
        elif kind in (CALLRESULT, CALLERROR):
            if self._pending is not None and self._pending[0] == msg_id:
                if not self._pending[1].done():
                    self._pending[1].set_result(frame)
            else:
                logger.info("%s: reply to unknown message %s", self.config.station_id, msg_id)
        else:
            self._spawn(self._reply_error(ws, msg_id, self.UNKNOWN_TYPE_ERROR), "reply error")

    # ----------------------------------------------------------------- CALLs

    async def call(self, action: str, payload: Payload) -> Payload:
        """Send a CALL and return the CALLRESULT payload.

        Raises CallError on a CALLERROR, NotConnected or CallTimeout (``config.call_timeout``)
        when no answer comes.
        Only one CALL is ever outstanding, as OCPP-J requires.
        """
        async with self._call_lock:
            ws = self._ws
            if ws is None:
                raise NotConnected(f"{action}: not connected")
            msg_id = str(uuid.uuid4())
            future: asyncio.Future[list[Any]] = asyncio.get_running_loop().create_future()
            self._pending = (msg_id, future)
            started = time.monotonic()
            try:
                await ws.send(json.dumps([CALL, msg_id, action, payload], separators=(",", ":")))
                self.metrics.calls += 1
                async with asyncio.timeout(self.config.call_timeout):
                    reply = await future
            except TimeoutError:
                self.metrics.timeouts += 1
                raise CallTimeout(f"{action}: no answer") from None
            except ConnectionClosed:
                raise NotConnected(f"{action}: connection lost") from None
            finally:
                self._pending = None
        self.metrics.record(action, time.monotonic() - started)
        if reply[0] == CALLERROR:
            self.metrics.call_errors += 1
            code = reply[2] if len(reply) > 2 else "GenericError"
            description = reply[3] if len(reply) > 3 else ""
            details = reply[4] if len(reply) > 4 and isinstance(reply[4], dict) else {}
            raise CallError(str(code), str(description), details)
        return reply[2] if isinstance(reply[2], dict) else {}

    async def _quietly(self, awaitable: Awaitable[Any]) -> Any:
        """For background traffic: a refused or undeliverable message is logged, not fatal."""
        try:
            return await awaitable
        except (CallError, DeliveryError) as exc:
            logger.info("%s: %s", self.config.station_id, exc)
            return None

    def _spawn(self, coro: Coroutine[Any, Any, Any], name: str) -> asyncio.Task[Any]:
        task = asyncio.create_task(coro, name=f"{self.config.station_id} {name}")
        self._tasks.add(task)
        task.add_done_callback(self._task_done)
        return task

    def _task_done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            logger.error("%s failed", task.get_name(), exc_info=task.exception())

    # ------------------------------------------------------ charger messages

    async def boot(self) -> Payload:
        """BootNotification; returns the CSMS's answer and remembers its status and interval."""
        cfg = self.config
        response = await self.call("BootNotification",
                                   self._boot_payload((cfg.serial or cfg.station_id)[:25]))
        self.boot_status = response.get("status")
        interval = response.get("interval")
        if self.boot_status == "Accepted":
            self.metrics.boots_accepted += 1
            if isinstance(interval, int) and interval > 0:
                self.settings[self.HEARTBEAT_KEY].value = str(interval)
            self._boot_accepted.set()
        else:
            self._boot_accepted.clear()
        self._set_state(f"boot {self.boot_status}")
        return response

    async def status(self, connector: int, status: str, error_code: str = "NoError") -> Payload:
        """StatusNotification with a status of this charger's OCPP version.

        ``error_code`` is 1.6 only. A 1.6 connector n is EVSE n, connector 1 in 2.0.1.
        """
        self.connector_status[connector] = status
        return await self.call(
            "StatusNotification", self._status_payload(connector, status, error_code)
        )

    async def _announce(self, connector: int, status: str) -> None:
        """Record a status change; tell the CSMS when online (it is re-announced on reconnect)."""
        self.connector_status[connector] = status
        if self.online:
            await self._quietly(self.status(connector, status))

    async def _announce_all(self) -> None:
        for connector in self._connectors():
            await self._announce(connector, self.connector_status[connector])

    async def heartbeat(self) -> Payload:
        return await self.call("Heartbeat", {})

    async def authorize(self, token: str) -> str:
        """Authorize; returns the authorization status (``Accepted``, ``Invalid``, ...)."""
        response = await self.call("Authorize", self._authorize_payload(token))
        return str(response.get(self.ID_INFO_KEY, {}).get("status"))

    # -------------------------------------------------------------- metering

    def _advance(self, connector: int) -> None:
        """Move the energy register forward by what was charged since the last reading."""
        now = time.monotonic()
        if connector in self.sessions:
            elapsed = now - self._metered_at[connector]
            self.energy_wh[connector] += self.config.power_w * elapsed / 3600
        self._metered_at[connector] = now

    def _sample(self, connector: int, context: str) -> Payload:
        """One meterValue entry (timestamp + sampled values) in this charger's OCPP version."""
        self._advance(connector)
        session = self.sessions.get(connector)
        power = self.config.power_w if session is not None else 0.0
        voltage = self.config.voltage_v
        readings: list[Reading] = [
            ("Energy.Active.Import.Register", int(self.energy_wh[connector]), "Wh", "Outlet"),
            ("Power.Active.Import", power, "W", "Outlet"),
            ("Current.Import", round(power / voltage, 1), "A", "Outlet"),
            ("Voltage", voltage, "V", "Outlet"),
        ]
        if session is not None:
            charged = self.energy_wh[connector] - session.meter_start
            soc = min(100.0, session.soc_start + charged / BATTERY_WH * 100)
            readings.append(("SoC", round(soc, 1), "Percent", "EV"))
        values = self._sampled_values(readings, context)
        return {"timestamp": utc_timestamp(), "sampledValue": values}

    # -------------------------------------------------------------- sessions

    async def start_session(
        self,
        connector: int,
        token: str,
        *,
        token_type: str = "ISO14443",
        remote_start_id: int | None = None,
    ) -> Session:
        """Start charging (no Authorize: call ``authorize`` first when the flow needs it).

        1.6: Preparing, StartTransaction, Charging. 2.0.1: Occupied, TransactionEvent Started.
        Offline, the start message is queued and sent after the reconnect.
        """
        if connector not in self.connector_status or connector in self.sessions:
            raise ValueError(f"connector {connector} is unknown or busy")
        self._advance(connector)
        session = Session(
            connector=connector,
            id_token=token,
            token_type=token_type,
            transaction_id=self._new_transaction_id(),
            meter_start=int(self.energy_wh[connector]),
            started_at=time.monotonic(),
            soc_start=self._rng.uniform(10, 60),
            remote_start_id=remote_start_id,
        )
        self.sessions[connector] = session
        session.begin_sample = self._sample(connector, "Transaction.Begin")
        try:
            await self._announce(connector, self.STARTING_STATUS)
            await self._send_tx(*self._start_message(session), session)
            if self.CHARGING_STATUS is not None:
                await self._announce(connector, self.CHARGING_STATUS)
        except CallError:
            del self.sessions[connector]
            await self._announce(connector, self._idle_status(connector))
            raise
        self._set_state(f"charging on connector {connector}")
        return session

    async def stop_session(self, connector: int, reason: str = "Local") -> bool:
        """End the session on ``connector`` (reason in 1.6's vocabulary, mapped for 2.0.1).

        1.6: StopTransaction, Finishing, Available. 2.0.1: TransactionEvent Ended, Available.
        Returns False when there was no session.
        """
        session = self.sessions.get(connector)
        if session is None:
            return False
        driver = session.driver
        if driver is not None and not driver.done() and driver is not asyncio.current_task():
            # The session's own task sends the stop, so it never races with a meter value.
            session.stop_reason = session.stop_reason or reason
            session.stop_requested.set()
            await asyncio.wait({driver})  # not `await driver`: our cancellation must not kill it
            return True
        await self._end_session(session, reason)
        return True

    async def _end_session(self, session: Session, reason: str) -> None:
        if session.ending:
            return
        session.ending = True
        connector = session.connector
        end = self._sample(connector, "Transaction.End")
        meter_stop = int(self.energy_wh[connector])
        del self.sessions[connector]
        self._metered_at[connector] = time.monotonic()
        try:
            await self._send_tx(*self._stop_message(session, reason, end, meter_stop), session)
            if self.FINISHING_STATUS is not None:
                await self._announce(connector, self.FINISHING_STATUS)
        finally:
            await self._announce(connector, self._idle_status(connector))
            self._set_state(f"session ended on connector {connector} ({reason})")

    def _drive(self, session: Session) -> asyncio.Task[None]:
        """Run the session in the background: periodic meter values until its length is
        reached or ``stop_session`` asks it to end."""
        session.driver = self._spawn(self._drive_loop(session), f"session {session.connector}")
        return session.driver

    async def _drive_loop(self, session: Session) -> None:
        deadline = session.started_at + self.config.session_length
        next_meter = session.started_at + self.meter_interval
        while True:
            now = time.monotonic()
            if now >= deadline:
                break
            metering = self.meter_interval > 0  # 0 switches periodic samples off, as in OCPP
            wake = min(deadline, next_meter) if metering else deadline
            if await wait_event(session.stop_requested, wake - now):
                break
            if metering and time.monotonic() >= next_meter:
                await self._quietly(self.send_meter_values(session.connector))
                next_meter = time.monotonic() + self.meter_interval
        await self._quietly(self._end_session(session, session.stop_reason or "Local"))

    async def _local_session(self, connector: int) -> None:
        """A driver walks up, badges, charges for session_length and leaves."""
        token = self._rng.choice(self.config.id_tokens)
        self._claimed.add(connector)
        try:
            if await self.authorize(token) != "Accepted":
                return
            session = await self.start_session(connector, token)
        finally:
            self._claimed.discard(connector)
        await asyncio.wait({self._drive(session)})

    async def _remote_session(
        self, connector: int, token: str, token_type: str, remote_start_id: int | None
    ) -> None:
        try:
            authorize = self.settings[self.REMOTE_AUTH_KEY].value == "true"
            if authorize and await self.authorize(token) != "Accepted":
                return
            session = await self.start_session(
                connector, token, token_type=token_type, remote_start_id=remote_start_id
            )
        finally:
            self._claimed.discard(connector)
        self._drive(session)

    # ------------------------------------------------- transaction messages

    async def _send_tx(self, action: str, payload: Payload, session: Session) -> Payload | None:
        """Queue a transaction message and flush; None when it stays queued (offline)."""
        message = TxMessage(action, payload, session)
        self._tx_queue.append(message)
        await self.flush()
        if message.error is not None:
            raise message.error
        return message.response

    async def flush(self) -> None:
        """Send queued transaction messages in order; stop at the first undeliverable one."""
        async with self._tx_lock:
            while self._tx_queue and self.online:
                message = self._tx_queue[0]
                payload = self._tx_payload(message)
                if payload is None:
                    self._tx_queue.popleft()
                    continue
                try:
                    message.response = await self.call(message.action, payload)
                except CallError as exc:
                    message.attempts += 1
                    if message.attempts < self.config.tx_attempts:
                        logger.info("%s: %s refused (%s), retrying", self.config.station_id,
                                    message.action, exc.code)
                        await asyncio.sleep(self.config.tx_retry_interval * message.attempts)
                        continue
                    message.error = exc
                    logger.warning(
                        "%s: %s refused: %s", self.config.station_id, message.action, exc
                    )
                except DeliveryError:
                    return  # stays at the head; re-sent after the reconnect or next heartbeat
                self._tx_queue.popleft()
                if message.response is not None:
                    self._on_tx_response(message)

    def _stop_unless_accepted(self, session: Session, status: object) -> None:
        """A real charger stops charging for a card the CSMS does not accept."""
        if status not in (None, "Accepted") and not session.ending:
            stop = self.stop_session(session.connector, "DeAuthorized")
            self._spawn(self._quietly(stop), "deauthorize")

    # ----------------------------------------------------- answering the CSMS

    async def _answer(
        self, ws: ClientConnection, msg_id: str, action: str, payload: Payload
    ) -> None:
        self.received_calls.append((action, payload))
        follow_up: FollowUp | None = None
        try:
            result = await self._hook(action, payload)
            if result is None:
                handler = self._handlers.get(action)
                if handler is None:
                    raise CallError("NotImplemented", f"{action} is not implemented")
                result, follow_up = handler(payload)
            reply: list[Any] = [CALLRESULT, msg_id, result]
        except CallError as exc:
            reply = [CALLERROR, msg_id, exc.code, exc.description, exc.details]
        except KeyError as exc:
            reply = [CALLERROR, msg_id, self.OCCURRENCE_ERROR, f"missing {exc}", {}]
        except (TypeError, ValueError, AttributeError) as exc:
            reply = [CALLERROR, msg_id, "TypeConstraintViolation", str(exc), {}]
        except Exception as exc:  # a bug here must still give the CSMS an answer
            logger.exception("%s: answering %s failed", self.config.station_id, action)
            reply = [CALLERROR, msg_id, "InternalError", str(exc), {}]
        try:
            await ws.send(json.dumps(reply, separators=(",", ":")))
        except ConnectionClosed:
            return  # the CSMS never saw an Accepted, so nothing may follow
        if follow_up is not None:
            # Only after the answer is out: the CSMS must see Accepted before the session starts.
            self._spawn(self._quietly(follow_up()), f"after {action}")

    async def _hook(self, action: str, payload: Payload) -> Payload | None:
        hook = self.on_call.get(action)
        if hook is None:
            return None
        result = hook(payload)
        if inspect.isawaitable(result):
            result = await result
        return result

    async def _reply_error(self, ws: ClientConnection, msg_id: str, code: str) -> None:
        with contextlib.suppress(ConnectionClosed):
            await ws.send(json.dumps([CALLERROR, msg_id, code, "malformed frame", {}]))

    # The handlers both versions share; a version's table (_handler_table) names them.

    def _on_remote_stop(self, p: Payload) -> Answer:
        session = self._session_by_transaction(p["transactionId"])
        if session is None:
            return {"status": "Rejected"}, None
        return {"status": "Accepted"}, lambda: self.stop_session(session.connector, "Remote")

    def _on_reset(self, p: Payload) -> Answer:
        reason = "SoftReset" if p["type"] == "Soft" else "HardReset"
        return {"status": "Accepted"}, lambda: self._reset(reason)

    async def _reset(self, reason: str) -> None:
        """End sessions, drop the connection and boot again (run() reconnects)."""
        for connector in list(self.sessions):
            await self.stop_session(connector, reason)
        self.boot_status = None
        self._boot_accepted.clear()
        self._boot_reason = "RemoteReset"
        self._set_state("resetting")
        await self._disconnect()

    def _change_availability(
        self, target: int, operative: bool
    ) -> Answer:
        """ChangeAvailability of one connector, or of all for ``target`` 0."""
        if target != 0 and target not in self.connector_status:
            return {"status": "Rejected"}, None
        targets = list(self._connectors()) if target == 0 else [target]
        for connector in targets:
            if operative:
                self._inoperative.discard(connector)
            else:
                self._inoperative.add(connector)
        idle = [c for c in targets if c not in self.sessions]
        # A busy connector changes when its session ends (_end_session announces it then).
        status = "Scheduled" if len(idle) < len(targets) and not operative else "Accepted"

        async def announce() -> None:
            for connector in idle:
                await self._announce(connector, self._idle_status(connector))

        return {"status": status}, announce

    def _answer_trigger(
        self, requested: str, connectors: list[int], senders: dict[str, FollowUp]
    ) -> Answer:
        """TriggerMessage's answer for the messages both versions send on request, and for
        ``senders``, a version's own."""
        senders = {
            "Heartbeat": self.heartbeat,
            "StatusNotification": lambda: self._send_statuses(connectors),
            "MeterValues": lambda: self._send_triggered_meters(connectors),
            "FirmwareStatusNotification": lambda: self.call(
                "FirmwareStatusNotification", {"status": "Idle"}
            ),
            **senders,
        }
        if requested not in senders:
            return {"status": "NotImplemented"}, None
        return {"status": "Accepted"}, senders[requested]

    async def _send_statuses(self, connectors: Iterable[int]) -> None:
        for connector in connectors:
            await self.status(connector, self.connector_status[connector])

    async def _send_triggered_meters(self, connectors: Iterable[int]) -> None:
        for connector in connectors:
            await self.send_meter_values(connector, context="Trigger")

    def _on_send_local_list(self, p: Payload) -> Answer:
        version = p[self.LIST_VERSION_KEY]
        entries = p.get("localAuthorizationList", [])
        if p["updateType"] == "Differential" and version <= self.local_list_version:
            return {"status": "VersionMismatch"}, None
        updated = {} if p["updateType"] == "Full" else dict(self.local_list)
        for entry in entries:
            token = self._entry_token(entry)
            info = entry.get(self.ID_INFO_KEY)
            if info is None:
                updated.pop(token, None)  # an entry without info removes the token
            else:
                updated[token] = info
        if len(updated) > LOCAL_LIST_MAX:
            return {"status": "Failed"}, None
        self.local_list, self.local_list_version = updated, version
        return {"status": "Accepted"}, None

    def _on_get_local_list_version(self, p: Payload) -> Answer:
        return {self.LIST_VERSION_KEY: self.local_list_version}, None

    def _on_clear_cache(self, p: Payload) -> Answer:
        return {"status": "Accepted"}, None  # the simulator keeps no authorization cache

    def _on_data_transfer(self, p: Payload) -> Answer:
        return {"status": "UnknownVendorId"}, None  # no vendor extensions are simulated

    # ------------------------------------------------------------------ run

    async def run(self, stop: asyncio.Event) -> None:
        """Behave like a real station until ``stop`` is set; then end sessions and disconnect."""
        cfg = self.config
        schedulers = []
        if cfg.session_every and cfg.id_tokens:
            schedulers = [
                self._spawn(self._auto_sessions(c, cfg.session_every, stop), f"sessions {c}")
                for c in self._connectors()
            ]
        delays = _backoff(cfg.reconnect_min, cfg.reconnect_max, self._rng)
        try:
            while not stop.is_set():
                try:
                    await self.connect()
                except (OSError, TimeoutError, WebSocketException):
                    await wait_event(stop, next(delays))
                    continue
                if await self._serve_connection(stop):
                    delays = _backoff(cfg.reconnect_min, cfg.reconnect_max, self._rng)
                if cfg.boot_on_reconnect:
                    self.boot_status = None
                if not stop.is_set():
                    await wait_event(stop, next(delays))
        finally:
            for task in schedulers:
                task.cancel()
            await self._end_all_sessions()
            await self.close()

    async def _serve_connection(self, stop: asyncio.Event) -> bool:
        """Keep one connection busy until it drops or ``stop`` is set; True if it got online
        (a connection the CSMS keeps refusing must not reset the reconnect backoff)."""
        assert self._reader is not None
        body = asyncio.create_task(self._online_body())
        stopper = asyncio.create_task(stop.wait())
        try:
            await asyncio.wait({body, stopper, self._reader}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            body.cancel()
            stopper.cancel()
            outcome, _ = await asyncio.gather(body, stopper, return_exceptions=True)
        if isinstance(outcome, Exception):
            logger.info("%s: connection ended: %r", self.config.station_id, outcome)
        got_online = self.boot_status == "Accepted"
        if not stop.is_set():
            await self._disconnect()
        return got_online

    async def _online_body(self) -> None:
        if self.boot_status != "Accepted":
            await self._boot_until_accepted()
        await self.flush()  # unanswered transaction messages go first, in order
        await self._announce_all()
        while True:
            await asyncio.sleep(max(self.heartbeat_interval, 1.0))
            await self._quietly(self.heartbeat())
            if self._tx_queue:
                await self.flush()

    async def _boot_until_accepted(self) -> None:
        while True:
            response = await self.boot()
            if self.boot_status == "Accepted":
                return
            interval = response.get("interval")
            delay = interval if isinstance(interval, int) and interval > 0 else DEFAULT_BOOT_RETRY_S
            # A TriggerMessage(BootNotification) may get us accepted before the delay is over.
            if await wait_event(self._boot_accepted, min(max(delay, 1.0), MAX_BOOT_RETRY_S)):
                return

    async def _auto_sessions(
        self, connector: int, mean_interval: float, stop: asyncio.Event
    ) -> None:
        while not await wait_event(stop, self._rng.expovariate(1 / mean_interval)):
            if self.online and self._is_free(connector):
                await self._quietly(self._local_session(connector))

    async def _end_all_sessions(self) -> None:
        """On shutdown, close sessions properly so the CSMS is not left with open ones."""
        try:
            async with asyncio.timeout(self.config.call_timeout):
                for connector in list(self.sessions):
                    await self.stop_session(connector, "Local")
        except TimeoutError:
            logger.info("%s: sessions not ended in time", self.config.station_id)
