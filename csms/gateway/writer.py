"""Group commit: the messages of many chargers stored in one database transaction.

A consumer hands its charger's CALL to the writer of its event loop and awaits the reply. The
writer takes every CALL waiting (up to OCPP_BATCH_LIMIT) to the ORM thread, runs their handlers
in one transaction (the messages every charger sends all day only add records to a
stations.services.batch.Batch, stored set-based at the end with the log rows of all their frames),
commits, and only then hands each consumer its reply: commit, then answer. While one batch is
being stored the next one gathers, so under load a batch holds what arrived meanwhile, and when
idle a message is stored alone at once: no timer, no added latency.

If anything in a batch fails (a handler's error, the database away, a constraint a retry ran
into), the batch is rolled back and each of its messages is stored again alone, so one bad
message never costs the others; the consumer answers the failed one with a CALLERROR.

Events go out after the replies, from a task of their own, so sending them never holds up the
next batch: one channel-layer message (stations/events.py) for all batches stored since the
last one, at most every OCPP_EVENTS_INTERVAL: a message per batch would be a Redis round trip
per batch on the event loop, which adds up when batches are small.
"""

import asyncio
import contextvars
import logging
from dataclasses import dataclass

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from csms import metrics
from csms.gateway import frames
from csms.gateway.frames import CALLRESULT, Call
from csms.gateway.orm import drop_if_broken, in_db_thread
from csms.gateway.table import Context, Handler
from stations import events
from stations.models import MessageLog, Station
from stations.persistence import JsonText
from stations.services.batch import Batch

log = logging.getLogger(__name__)

@dataclass(slots=True)
class Job:
    station: Station
    version: str
    handler: Handler
    call: Call
    future: asyncio.Future


class Writer:
    """One per event loop (a server process runs one; the test suite several)."""

    def __init__(self) -> None:
        self.waiting: list[Job] = []
        self.wake = asyncio.Event()
        self.task: asyncio.Task | None = None
        self.outbox: list[dict] = []
        self.sender: asyncio.Task | None = None

    async def store(self, station: Station, version: str, handler: Handler,
                    call: Call) -> str:
        """The reply frame to send, once the message is committed; raises what its handler
        raised (FrameError, or anything else: not stored)."""
        loop = asyncio.get_running_loop()
        job = Job(station, version, handler, call, loop.create_future())
        self.waiting.append(job)
        self.wake.set()
        if self.task is None or self.task.done():
            # A context of its own: not the station id (csms/logs.py) of the charger that
            # happened to start it.
            self.task = loop.create_task(self._run(), name="csms writer",
                                         context=contextvars.Context())
        return await job.future

    async def _run(self) -> None:
        limit = settings.OCPP["BATCH_LIMIT"]
        while True:
            await self.wake.wait()
            self.wake.clear()
            while self.waiting:
                jobs, self.waiting = self.waiting[:limit], self.waiting[limit:]
                metrics.BATCH.observe(len(jobs))
                try:
                    outcomes, published = await in_db_thread(store, jobs)
                except Exception as error:  # the hop itself failed: nothing stored
                    outcomes, published = [error] * len(jobs), []
                for job, outcome in zip(jobs, outcomes, strict=True):
                    if job.future.done():  # its consumer is gone (socket closed)
                        continue
                    if isinstance(outcome, Exception):
                        job.future.set_exception(outcome)
                    else:
                        job.future.set_result(outcome)
                if published:
                    self.outbox += published
                    if self.sender is None or self.sender.done():
                        self.sender = asyncio.create_task(self._send_events())

    async def _send_events(self) -> None:
        """The first events at once; what comes meanwhile, together, an interval later."""
        while self.outbox:
            published, self.outbox = self.outbox, []
            await events.asend(published)
            await asyncio.sleep(settings.OCPP["EVENTS_INTERVAL"])


_writers: dict[asyncio.AbstractEventLoop, Writer] = {}


def writer() -> Writer:
    """The writer of the running event loop."""
    loop = asyncio.get_running_loop()
    if loop not in _writers:
        for old in [old for old in _writers if old.is_closed()]:
            del _writers[old]
        _writers[loop] = Writer()
    return _writers[loop]


# --- on the ORM thread ------------------------------------------------------------------------

def store(jobs: list[Job]) -> tuple[list[str | Exception], list[dict]]:
    """Store a batch; on failure, each of its messages alone. Returns, per job, its reply
    frame or the exception that kept it from being stored, and the events to send."""
    try:
        return _store(jobs)
    except Exception as error:
        drop_if_broken()
        if len(jobs) == 1:
            return [error], []
        log.warning("a batch of %d messages failed (%s); storing each alone", len(jobs),
                    type(error).__name__)
    outcomes: list[str | Exception] = []
    published: list[dict] = []
    for job in jobs:
        try:
            replies, sent = _store([job])
        except Exception as error:
            drop_if_broken()
            replies, sent = [error], []
        outcomes += replies
        published += sent
    return outcomes, published


def _store(jobs: list[Job]) -> tuple[list[str | Exception], list[dict]]:
    batch = Batch()
    replies: list[str | Exception] = []
    now = timezone.now()
    with events.collected() as published, transaction.atomic():
        for job in jobs:
            call = job.call
            payload = job.handler(Context(job.station, batch), call.payload)
            if settings.OCPP["VALIDATE_REPLIES"]:
                frames.validate(CALLRESULT, call.action, payload, job.version)
            reply = frames.dumps(payload)
            replies.append(frames.result_frame(call.message_id, reply))
            # The frames' payloads as they went over the socket, not written out again.
            batch.log += [(job.station.pk, MessageLog.Direction.IN, frames.CALL, call.message_id,
                           call.action, JsonText(call.payload_json), now),
                          (job.station.pk, MessageLog.Direction.OUT, CALLRESULT, call.message_id,
                           call.action, JsonText(reply), now)]
        batch.flush()  # the message log with the rest (stations.persistence.LOG_FIELDS)
    return replies, published
