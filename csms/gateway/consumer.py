"""One consumer per charger socket: handshake, frames in and out, commands from the channel layer.

Two rules shape it:
- Commit, then answer. A charger's CALL is handled in a database transaction on the ORM thread
  (message log included), together with other chargers' CALLs (group commit:
  csms/gateway/writer.py), and the CALLRESULT is sent only after it committed; a failure
  answers InternalError, never a CALLRESULT for data we did not store.
- Never wait for the charger inside a handler. Channels dispatches a consumer's messages one at
  a time, and the charger's reply to our CALL arrives as the *next* message: an outbound CALL is
  sent, remembered, and completed when its reply is dispatched (or when its timer runs out).

The hot path is one hop to the ORM thread per batch of messages, and nothing else that waits:
validation runs inline, the connection is not health-checked per message (csms/gateway/orm.py),
events go out after the answers. Liveness (silent chargers, presence across processes) is one
task per process, not per socket: csms/gateway/liveness.py.
"""

import asyncio
import decimal
import functools
import logging
import time
from collections import deque
from collections.abc import Callable
from contextlib import suppress
from dataclasses import dataclass
from http import HTTPStatus

from asgiref.sync import sync_to_async
from channels.consumer import get_handler_name
from channels.exceptions import StopConsumer
from channels.generic.websocket import AsyncWebsocketConsumer
from channels.layers import get_channel_layer
from django.conf import settings
from django.db import DataError, transaction

from csms import logs, metrics, proxies
from csms.gateway import auth, frames, liveness
from csms.gateway.frames import CALLRESULT, Call, CallError, CallResult, FrameError
from csms.gateway.orm import write_and_publish
from csms.gateway.table import TABLE, ReplyContext, status_reader
from csms.gateway.writer import writer
from stations import events
from stations.models import Call as CallRow
from stations.models import MessageLog, Station
from stations.services import commands, message_log, presence, registration
from stations.services.commands import Reply

log = logging.getLogger(__name__)

# Every close of an admitted charger's socket (displaced, rejected, silent) is a normal closure:
# daphne sends no other standard code (1001, 1002, 1008 fail there, and the socket stays open),
# and a charger does nothing different for the others. The log says why.
CLOSE_CODE = 1000


@dataclass(slots=True)
class Outstanding:
    call_id: int
    message_id: str
    action: str
    payload: dict  # as sent: its reader may need what the stored call masks (a new password)
    reply_to: str | None
    timer: asyncio.Task


class ChargerConsumer(AsyncWebsocketConsumer):
    station: Station
    version: str

    async def __call__(self, scope: dict, receive: Callable, send: Callable) -> None:
        """Channels' AsyncConsumer.__call__, without its cost per frame: await_many_dispatch
        waits on the socket and the channel layer with a new task and an asyncio.wait for every
        message, which costs more than dispatching a small message itself. Here the frames are
        read in this task and the layer's messages in one task of their own, for the socket's
        life; a lock keeps Channels' promise that a consumer handles one message at a time, and
        a failure of either ends the consumer as it would in Channels."""
        self.scope = scope
        self.channel_layer = get_channel_layer(self.channel_layer_alias)
        self.channel_name = await self.channel_layer.new_channel()
        self.channel_receive = functools.partial(self.channel_layer.receive, self.channel_name)
        self.base_send = send
        self._turn = asyncio.Lock()
        self._layer_failure: Exception | None = None
        layer = None
        try:
            while True:
                message = await receive()
                async with self._turn:
                    await self.dispatch(message)
                if layer is None:
                    # Started after the handshake: a task copies the context it is created in,
                    # and this one now names the station in every log line (logs.station). No
                    # one knows the channel before the handshake put it in the station's group.
                    layer = asyncio.ensure_future(self._from_layer(asyncio.current_task()))
        except StopConsumer:
            pass
        except asyncio.CancelledError:
            if self._layer_failure is not None:
                raise self._layer_failure from None
            raise
        finally:
            if layer is not None:
                layer.cancel()
                with suppress(asyncio.CancelledError):
                    await layer

    async def _from_layer(self, frames_task: asyncio.Task) -> None:
        try:
            while True:
                message = await self.channel_receive()
                async with self._turn:
                    await self.dispatch(message)
        except Exception as failure:
            # As in Channels: the consumer ends, after the frame being handled if there is one.
            self._layer_failure = failure
            async with self._turn:
                frames_task.cancel()

    async def dispatch(self, message: dict) -> None:
        # Channels' dispatch first recycles database connections, a thread hop per frame;
        # every database call here runs through orm.in_db_thread (_write), which does what is
        # needed.
        handler = getattr(self, get_handler_name(message), None)
        if handler is None:
            raise ValueError(f"No handler for message type {message['type']}")
        await handler(message)

    # --- handshake ----------------------------------------------------------------------------

    async def connect(self) -> None:
        self.station_id = self.scope["url_route"]["kwargs"]["station_id"]
        logs.station.set(self.station_id[:60])
        self.address = proxies.client_address(self.scope)
        self.admitted = False
        self.displaced = False
        self.closing_reason = ""
        self.queue: deque[tuple[int, str | None]] = deque()
        self.outstanding: Outstanding | None = None
        self.heard_at = time.monotonic()
        try:
            station = await self._write(auth.station_for, self.station_id, self.address)
            offered = self.scope.get("subprotocols", [])
            version = next((v for p, v in frames.SUBPROTOCOLS.items() if p in offered), None)
            if version is None:
                raise await self._write(
                    auth.refuse, self.station_id, self.address, "no_subprotocol",
                    "offered: " + ", ".join(offered)[:150])
            await self._write(auth.check_transport, station, self.scope, self.address)
            if auth.needs_password(station):
                await self._check_credentials(station)
        except auth.Refusal as refusal:
            metrics.CONNECTIONS.labels(refusal.reason).inc()
            log.info("refused %s from %s: %s", self.station_id[:60], self.address,
                     refusal.reason)
            if refusal.reason == "no_subprotocol":
                # No OCPP version in common: the upgrade is refused with 400 Bad Request, as the
                # OCA's test tool expects, rather than completed and closed.
                await self._refuse_upgrade(400)
            else:
                denial = auth.denial(refusal, self.scope)
                for message in denial:  # 401 with a Basic challenge
                    await self.base_send(message)
                if not denial:
                    await self.close()  # before accept: the server answers HTTP 403
            return
        self.station, self.version = station, version
        self.inbound = TABLE.inbound(version)
        self.group = events.charger_group(station.pk)
        await self.channel_layer.group_add(self.group, self.channel_name)
        # Admitted: now, and only now, an older connection of this station steps aside.
        await self.channel_layer.group_send(self.group,
                                            {"type": "ocpp.displace", "by": self.channel_name})
        self.connection = await write_and_publish(presence.station_connected, station, version)
        self.admitted = True
        liveness.register(self)
        metrics.CONNECTIONS.labels("admitted").inc()
        metrics.CHARGERS.labels(version).inc()
        await self.accept(subprotocol=next(p for p, v in frames.SUBPROTOCOLS.items()
                                           if v == version))
        log.info("connected %s (OCPP %s) from %s", station.pk, version, self.address)

    async def _refuse_upgrade(self, status: int) -> None:
        """Answer the handshake with an HTTP status where the server can (the ASGI WebSocket
        Denial Response extension: uvicorn); elsewhere (daphne) close before accepting, which
        the server answers 403."""
        if "websocket.http.response" not in self.scope.get("extensions", {}):
            await self.close()
            return
        await self.base_send({"type": "websocket.http.response.start", "status": status,
                              "headers": [(b"content-type", b"text/plain")]})
        await self.base_send({"type": "websocket.http.response.body",
                              "body": HTTPStatus(status).phrase.encode()})

    async def _check_credentials(self, station: Station) -> None:
        try:
            # The hash comparison is CPU work: off the single ORM thread.
            if await sync_to_async(auth.check_credentials, thread_sensitive=False)(
                    station, self.scope, self.address):
                await self._write(registration.station_password_confirm, station)
        except auth.Refusal:
            raise
        except Exception:
            log.exception("credential check failed for %s", station.pk)
            raise auth.Refusal("error") from None

    async def disconnect(self, code: int) -> None:
        if not self.admitted:
            return
        liveness.unregister(self)
        metrics.CHARGERS.labels(self.version).dec()
        metrics.DISCONNECTS.labels(self.closing_reason or ("displaced" if self.displaced
                                                          else "charger")).inc()
        try:
            await self.channel_layer.group_discard(self.group, self.channel_name)
        except Exception:  # the group forgets us at its expiry; the socket is gone either way
            log.warning("could not leave %s's group", self.station.pk)
        if self.outstanding is not None:
            self.outstanding.timer.cancel()
            await self._call_end(self.outstanding, Reply(CallRow.Status.TIMEOUT))
        while self.queue:
            call_id, reply_to = self.queue.popleft()
            await self._write(commands.call_not_sent, call_id)
            await self._notify(reply_to, call_id)
        if not self.displaced:
            await write_and_publish(presence.station_disconnected, self.station.pk,
                                    self.station.site_id, self.connection)
        log.info("disconnected %s (code %s)", self.station.pk, code)

    async def ocpp_displace(self, message: dict) -> None:
        if message["by"] != self.channel_name:
            self.displaced = True
            await self.close(code=CLOSE_CODE)

    async def ocpp_registration(self, message: dict) -> None:
        """A person decided the station's registration (registration.station_registration_decide):
        what it may send changes now, not at its next boot. Rejected, it is shut out: the
        socket closes, and the handshake refuses its next connection."""
        self.station.registration = message["registration"]
        if message["registration"] == Station.Registration.REJECTED:
            self.closing_reason = "rejected"
            log.info("closing %s: rejected by an operator", self.station.pk)
            await self.close(code=CLOSE_CODE)

    async def close_silent(self) -> None:
        """Nothing heard for longer than the silence limit: the charger is gone (liveness.py)."""
        self.closing_reason = "silent"
        log.info("closing %s: silent for %.0f s", self.station.pk,
                 time.monotonic() - self.heard_at)
        await self.close(code=CLOSE_CODE)

    # --- frames from the charger --------------------------------------------------------------

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        self.heard_at = time.monotonic()
        if text_data is None:
            await self._send_error(FrameError("rpc", "OCPP-J frames are text, not binary"))
            return
        if len(text_data) > settings.OCPP["MAX_FRAME_BYTES"]:
            await self._send_error(FrameError(
                "format", f"Frame larger than {settings.OCPP['MAX_FRAME_BYTES']} bytes",
                frames.message_id_of(text_data)), logged=text_data[:200])
            return
        try:
            frame = frames.parse(text_data)
        except FrameError as error:
            await self._send_error(error, logged=text_data[:1000])
            return
        if isinstance(frame, Call):
            await self._handle_call(frame)
        else:
            await self._handle_reply(frame)

    async def _handle_call(self, call: Call) -> None:
        started = time.perf_counter()
        try:
            entry = self.inbound.get(call.action)
            if entry is None or entry.handler is None:
                if call.action not in frames.known_actions(self.version):
                    raise FrameError("not_implemented", "Unknown action")
                raise FrameError("not_supported", f"{call.action} is not supported")
            frames.validate(frames.CALL, call.action, call.payload, self.version)
            # While a station is not accepted it may only register itself.
            if (self.station.registration != Station.Registration.ACCEPTED
                    and not entry.before_acceptance):
                raise FrameError("security", "Station is not accepted yet")
        except FrameError as error:
            error.message_id = call.message_id
            await self._send_error(error, logged=call)
            return
        try:
            reply = await writer().store(self.station, self.version, entry.handler, call)
        except FrameError as error:  # a value the schema allows but the domain cannot read
            error.message_id = call.message_id
            await self._send_error(error, logged=call)
            return
        except (DataError, OverflowError, decimal.DecimalException) as error:
            # A value the schema allows that no column or conversion holds: the same message
            # fails again however often it is sent, so "retry later" would be a lie.
            log.warning("%s from %s: a value out of range (%s)", call.action, self.station.pk,
                        type(error).__name__)
            await self._send_error(FrameError("property", "A value is out of the range the "
                                              "CSMS can store", call.message_id), logged=call)
            return
        except Exception:
            log.exception("%s from %s failed", call.action, self.station.pk)
            metrics.message_counter(self.version, call.action, "InternalError").inc()
            await self._send_error(FrameError("internal", "Message not stored; retry later",
                                              call.message_id))
            return
        await self.send(text_data=reply)
        metrics.latency_histogram(call.action).observe(time.perf_counter() - started)
        metrics.message_counter(self.version, call.action, "result").inc()

    async def _send_error(self, error: FrameError, logged: object = None) -> None:
        code = frames.error_code(error.kind, self.version if self.admitted else "2.0.1")
        details = {k: str(v)[:100] for k, v in error.details.items()}
        await self.send(text_data=frames.error_frame(error.message_id, code, error.description,
                                                     details))
        version = self.version if self.admitted else "2.0.1"
        metrics.error_counter(version, code).inc()
        if isinstance(logged, Call) and logged.action in frames.known_actions(version):
            metrics.message_counter(version, logged.action, code).inc()
        log.info("CALLERROR %s to %s: %s", code, self.station_id[:60], error.description)
        try:
            await self._write(self._log_error, logged, error.message_id, code, error.description)
        except Exception:  # the database may be why we answer with an error at all
            log.warning("could not log a CALLERROR for %s", self.station_id[:60], exc_info=True)

    def _log_error(self, logged: object, message_id: str, code: str, description: str) -> None:
        received = None
        if isinstance(logged, Call):
            received = (MessageLog.MessageType.CALL, logged.action, logged.payload)
        elif logged is not None:
            received = (MessageLog.MessageType.UNREADABLE, "", str(logged))
        message_log.error_record(self.station, message_id, (code, description), received)

    # --- commands to the charger --------------------------------------------------------------

    async def ocpp_call(self, message: dict) -> None:
        """A person's command, routed here because this process holds the station's socket."""
        self.queue.append((message["call"], message.get("reply_to")))
        await self._send_next()

    async def _send_next(self) -> None:
        # At most one outstanding CALL per direction (OCPP-J §4.1.1): the rest wait in order.
        while self.outstanding is None and self.queue:
            call_id, reply_to = self.queue.popleft()
            row = await self._write(commands.call_claim, self.station, call_id)
            if row is None:  # ended already (timed out while queued) or taken by another socket
                await self._notify(reply_to, call_id)
                continue
            timer = asyncio.ensure_future(self._expire(call_id))
            self.outstanding = Outstanding(call_id, row.message_id, row.action, row.payload,
                                           reply_to, timer)
            await self.send(text_data=frames.call_frame(row.message_id, row.action,
                                                        row.payload))

    async def _expire(self, call_id: int) -> None:
        await asyncio.sleep(settings.OCPP["CALL_TIMEOUT"])
        if self.outstanding is not None and self.outstanding.call_id == call_id:
            outstanding, self.outstanding = self.outstanding, None
            await self._call_end(outstanding, Reply(CallRow.Status.TIMEOUT))
            await self._send_next()

    async def _handle_reply(self, reply: CallResult | CallError) -> None:
        outstanding = self.outstanding
        if outstanding is None or reply.message_id != outstanding.message_id:
            # A late answer to a call that already timed out, or noise: logged, not paired.
            await self._write(self._log_reply, reply, "")
            return
        self.outstanding = None
        outstanding.timer.cancel()
        if isinstance(reply, CallError):
            ended = Reply(CallRow.Status.ERROR, error=(reply.code, reply.description))
        else:
            try:
                frames.validate(CALLRESULT, outstanding.action, reply.payload, self.version)
                ended = None  # its block's reader says what came of it (_call_record)
            except FrameError as error:
                ended = Reply(CallRow.Status.ERROR, response=reply.payload,
                              error=("InvalidResponse", error.description))
        await self._call_end(outstanding, ended, reply)
        await self._send_next()

    async def _call_end(self, outstanding: Outstanding, ended: Reply | None,
                        reply: CallResult | CallError | None = None) -> None:
        """Store how a call ended (`ended` None: a valid result, read by its block) and tell
        whoever waits for it."""
        status, published = await self._write(self._call_record, outstanding, ended, reply)
        metrics.CALLS.labels(outstanding.action, status).inc()
        await self._notify(outstanding.reply_to, outstanding.call_id)
        await events.asend(published)

    def _call_record(self, outstanding: Outstanding, ended: Reply | None,
                     reply: CallResult | CallError | None) -> tuple[str, list[dict]]:
        """On the ORM thread: the reply frame logged, the outcome stored, in one transaction
        with what the block's reader writes. Returns the outcome and the events to send."""
        with events.collected() as published, transaction.atomic():
            if reply is not None:
                self._log_reply(reply, outstanding.action)
            if ended is None:
                ended = self._read(outstanding, reply.payload)
            commands.call_end(self.station, outstanding.call_id, ended)
        return ended.status, published

    def _read(self, outstanding: Outstanding, payload: dict) -> Reply:
        """A valid result, as its block reads it; a reader that fails ends the call as an
        error and writes nothing (its savepoint is rolled back)."""
        entry = TABLE.outbound(self.version, outstanding.action)
        read = entry.read if entry is not None else status_reader
        try:
            with transaction.atomic():
                status = read(ReplyContext(self.station, outstanding.call_id,
                                           outstanding.payload), payload)
        except Exception:
            log.exception("reading the answer to %s failed", outstanding.action)
            return Reply(CallRow.Status.ERROR, response=payload,
                         error=("InternalError", "The answer could not be read"))
        return Reply(status, response=payload)

    def _log_reply(self, reply: CallResult | CallError, action: str) -> None:
        if isinstance(reply, CallResult):
            message_type, payload = MessageLog.MessageType.CALLRESULT, reply.payload
        else:
            message_type = MessageLog.MessageType.CALLERROR
            payload = [reply.code, reply.description, reply.details]
        message_log.frame_record(self.station, MessageLog.Direction.IN, message_type,
                                 reply.message_id, action, payload)

    async def _notify(self, reply_to: str | None, call_id: int) -> None:
        if reply_to:
            try:
                await self.channel_layer.send(reply_to, {"type": "ocpp.call.done",
                                                         "call": call_id})
            except Exception:  # the asker times out and reads the Call row instead
                log.warning("could not tell %s that call %s ended", reply_to, call_id)

    async def _write(self, function, *args):
        # What it writes may be news for the dashboard (a refusal, a logged frame): announced
        # from here, after the write, not from the ORM thread.
        return await write_and_publish(function, *args)
