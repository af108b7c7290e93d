"""Which chargers are really there: one task per server process, not a timer per socket.

Every OCPP_PRESENCE_INTERVAL seconds the task of a process
1. closes the sockets of chargers silent for longer than OCPP_SILENCE_LIMIT (default two
   heartbeat intervals: a charger may skip a heartbeat when it sent something else, never two).
   A peer that stopped answering WebSocket pings is closed sooner by the server itself
   (daphne --ping-interval/--ping-timeout, uvicorn --ws-ping-interval/--ws-ping-timeout);
2. refreshes `last_seen` of every station whose socket it holds (one UPDATE per 500 stations);
3. sweeps: stations marked connected that no process has refreshed for three intervals are
   marked offline (their process was killed: no disconnect handler ran), and transactions left
   open by a reboot or a long silence are closed by the policy in
   stations/services/transactions.py;
4. with Redis, re-joins the command groups of its sockets when Redis has lost them (a restart)
   or before channels-redis lets them expire (group_expiry): otherwise commands for a charger
   connected for a day, or across a Redis restart, would silently go nowhere.

The sweep runs in every process and in Celery beat (stations.tasks.sweep_liveness), so it also
happens when every server process is gone.
"""

import asyncio
import contextvars
import logging
import time
import uuid
from typing import Any, Protocol

from django.conf import settings
from redis import asyncio as aioredis

from csms import metrics
from csms.gateway.orm import write_and_publish
from stations.models import Station
from stations.services import presence, transactions

log = logging.getLogger(__name__)



class HeldSocket(Protocol):
    """What liveness needs of a charger's connection (the consumer holding its socket)."""

    station: Station
    connection: uuid.UUID  # presence.station_connected's id of this connection
    heard_at: float  # time.monotonic() of its last frame
    closing_reason: str
    displaced: bool
    group: str
    channel_name: str
    channel_layer: Any

    async def close_silent(self) -> None: ...


PROCESS_KEY = f"csms{settings.RUN_ID}:process:{uuid.uuid4().hex}"
_CHUNK = 500
# Per event loop (the test suite runs several loops in one process; a server runs one).
_held: dict[asyncio.AbstractEventLoop, set[HeldSocket]] = {}
_tasks: dict[asyncio.AbstractEventLoop, asyncio.Task] = {}


def register(consumer: HeldSocket) -> None:
    loop = asyncio.get_running_loop()
    _held.setdefault(loop, set()).add(consumer)
    if loop not in _tasks:
        # A context of its own: not the station id (csms/logs.py) of the charger that started it.
        _tasks[loop] = loop.create_task(_watch(loop), name="csms liveness",
                                        context=contextvars.Context())


def unregister(consumer: HeldSocket) -> None:
    loop = asyncio.get_running_loop()
    held = _held.get(loop, set())
    held.discard(consumer)
    if not held:
        # Nothing left to watch; the next admitted charger starts it again.
        _held.pop(loop, None)
        task = _tasks.pop(loop, None)
        if task is not None and task is not asyncio.current_task():
            task.cancel()


def held() -> list[HeldSocket]:
    return list(_held.get(asyncio.get_running_loop(), ()))


async def _watch(loop: asyncio.AbstractEventLoop) -> None:
    redis = _redis()
    if redis is not None:
        try:  # our groups are fresh now; the key's absence later means they are not
            await redis.set(PROCESS_KEY, 1, ex=_group_refresh_seconds())
        except Exception:
            log.warning("Redis unreachable at start of liveness", exc_info=True)
    while True:
        await asyncio.sleep(settings.OCPP["PRESENCE_INTERVAL"])
        try:
            await tick(redis)
        except Exception:  # the database or Redis may be down: try again next time
            log.warning("liveness tick failed", exc_info=True)


async def tick(redis=None) -> None:
    """One round: close silent sockets, refresh presence, sweep, re-join lost groups."""
    consumers = held()
    now = time.monotonic()
    limit = settings.OCPP["SILENCE_LIMIT"]
    for consumer in consumers:
        if now - consumer.heard_at > limit and not consumer.closing_reason:
            await consumer.close_silent()
    stale_after = 3 * settings.OCPP["PRESENCE_INTERVAL"]
    present = [(c.station.pk, c.connection) for c in consumers
               if not c.displaced and not c.closing_reason]
    for start in range(0, len(present), _CHUNK):
        await write_and_publish(presence.stations_present, dict(present[start:start + _CHUNK]),
                                stale_after)
    await write_and_publish(_sweep, stale_after)
    if redis is not None:
        await _rejoin_groups(redis, consumers)


def _sweep(stale_after: float) -> None:
    metrics.SWEPT.inc(len(presence.stations_sweep(stale_after)))
    transactions.transactions_close_abandoned()


def _group_refresh_seconds() -> int:
    expiry = settings.CHANNEL_LAYERS["default"]["CONFIG"].get("group_expiry", 86400)
    return max(1, expiry // 2)


def _redis():
    if not settings.REDIS_URL:
        return None
    return aioredis.from_url(settings.REDIS_URL)


async def _rejoin_groups(redis, consumers: list[HeldSocket]) -> None:
    """Groups live in Redis: a key of ours that vanished means Redis lost them, or is about to
    expire them. Either way every socket of this process joins its group again."""
    if await redis.set(PROCESS_KEY, 1, ex=_group_refresh_seconds(), nx=True) is None:
        return  # still there: nothing lost
    if not consumers:
        return
    log.info("joining %d command groups again", len(consumers))
    try:
        for start in range(0, len(consumers), 100):
            await asyncio.gather(*(c.channel_layer.group_add(c.group, c.channel_name)
                                   for c in consumers[start:start + 100] if not c.displaced))
    except Exception:
        await redis.delete(PROCESS_KEY)  # not done: the next round tries again
        raise

