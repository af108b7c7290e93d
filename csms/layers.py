"""The Redis channel layer, made to survive Redis going away and to bear connection bursts.

channels-redis as shipped has two failure modes that cost a charging network its connections:
- Every consumer waits in `receive()` on the layer. When Redis restarts, that raises, the
  consumer ends, and the server closes the socket: every charger of the process is dropped. Here
  `receive()` waits for Redis to come back instead (one probe per process, not one per socket),
  and the sockets stay open. Messages sent meanwhile are lost, as the layer's contract allows:
  commands are persisted as Call rows and end as timed out (stations/services/commands.py).
- redis-py's pool raises MaxConnectionsError the moment it is exhausted, so a burst of charger
  connects (each a group_add) fails some at once. Here the pool is a blocking one: a caller waits
  for a free connection, for a bounded time.
- redis-py 8 reads with a 5 s socket timeout by default, and channels-redis waits for messages
  with a 5 s BZPOPMIN: on an idle process the read times out, receive() raises, and daphne
  closes the socket: every charger quiet for five seconds would be dropped. Here the socket
  timeout outlasts the blocking pop.

- Each consumer waiting on its process-local channel costs, in channels-redis, an asyncio.Queue
  (four deques) and two tasks racing for a receive lock: memory per held charger that adds up
  over thousands of them. Here one task per process reads the process's
  Redis queue and hands each message to its channel's waiting future; a message for a consumer
  that is busy waits in a short list. Same delivery as channels-redis: in order per channel, at
  most `capacity` kept per channel (oldest dropped), what a cancelled receiver had is dropped.

A restarted Redis has also forgotten the groups; csms.gateway.liveness re-joins them.
"""

import asyncio
import contextvars
import logging
import random
from dataclasses import dataclass, field

from channels_redis.core import RedisChannelLayer
from redis import asyncio as aioredis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

log = logging.getLogger(__name__)
# Set in the reader task's own context only: which process-local channels it reads for.
_reading_for: contextvars.ContextVar["LocalChannels | None"] = contextvars.ContextVar(
    "reading_for", default=None)

UNREACHABLE = (RedisConnectionError, RedisTimeoutError, ConnectionError, OSError)
PROBE_SECONDS = 1.0


class _NobodyWaits(Exception):
    """The reader's blocking pop timed out and no consumer waits any more: it stops."""


@dataclass(eq=False)
class LocalChannels:
    """The process-local channels being received on in one event loop."""

    loop: asyncio.AbstractEventLoop
    waiting: dict[str, asyncio.Future] = field(default_factory=dict)
    arrived: dict[str, list[dict]] = field(default_factory=dict)
    reader: asyncio.Task | None = None


class ResilientRedisChannelLayer(RedisChannelLayer):
    def __init__(self, *args, max_connections: int = 200, pool_timeout: float = 10.0,
                 **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.max_connections = max_connections
        self.pool_timeout = pool_timeout
        self._reachable: asyncio.Event | None = None
        self._probe_task: asyncio.Task | None = None
        self._local_channels: LocalChannels | None = None

    def create_pool(self, index: int) -> aioredis.BlockingConnectionPool:
        host = {"socket_timeout": self.brpop_timeout + 10, **self.hosts[index]}
        return aioredis.BlockingConnectionPool.from_url(
            host.pop("address"), max_connections=self.max_connections,
            timeout=self.pool_timeout, **host)

    async def receive(self, channel: str) -> dict:
        while True:
            if self._reachable is not None:
                await self._reachable.wait()
            try:
                if "!" in channel:
                    return await self._receive_local(channel)
                return await super().receive(channel)
            except UNREACHABLE as error:
                self._unreachable(error)

    async def _receive_local(self, channel: str) -> dict:
        local = self._local_channels
        arrived = local.arrived.get(channel) if local is not None else None
        if arrived:
            message = arrived.pop(0)
            if not arrived:
                del local.arrived[channel]
            return message
        assert self.require_valid_channel_name(channel)
        loop = asyncio.get_running_loop()
        if local is None or local.loop is not loop:
            # One reader of the process's queue at a time, as channels-redis enforces: two would
            # take each other's messages.
            if local is not None and local.waiting and not local.loop.is_closed():
                raise RuntimeError("Two event loops are trying to receive() on one channel "
                                   "layer at once!")
            local = self._local_channels = LocalChannels(loop)
        if channel in local.waiting:  # a consumer receives on its channel one at a time
            raise RuntimeError(f"{channel} already has a receiver")
        waiter = loop.create_future()
        local.waiting[channel] = waiter
        if local.reader is None or local.reader.done():
            # A context of its own: not the station id (csms/logs.py) of the socket that
            # happened to start it.
            local.reader = loop.create_task(self._read(local, self.non_local_name(channel)),
                                            name="channel layer reader",
                                            context=contextvars.Context())
        try:
            return await waiter
        except asyncio.CancelledError:
            # The consumer is going away: what arrived for it goes too (as in channels-redis).
            local.arrived.pop(channel, None)
            if local.waiting.get(channel) is waiter:
                del local.waiting[channel]
            # The reader is not cancelled: it stops by itself within `brpop_timeout` once nobody
            # waits (_brpop_with_clean). Cancelled in redis-py's blocking read it could hang
            # the event loop's shutdown in the test suite.
            raise

    async def _brpop_with_clean(self, index: int, channel: str,
                                timeout: int) -> bytes | None:  # noqa: ASYNC109 (overrides)
        member = await super()._brpop_with_clean(index, channel, timeout)
        local = _reading_for.get()
        if member is None and local is not None and not local.waiting:
            # channels-redis's receive_single would pop again, forever, holding its per-channel
            # lock, which another event loop (a test's next one) then waits on.
            raise _NobodyWaits
        return member

    async def _read(self, local: LocalChannels, real_channel: str) -> None:
        """Read the process's queue while anyone waits: each message to its channel's waiter,
        or kept (up to `capacity` per channel, oldest dropped) until that channel asks."""
        _reading_for.set(local)
        try:
            while local.waiting:
                channels, message = await self.receive_single(real_channel)
                for channel in channels if isinstance(channels, list) else [channels]:
                    waiter = local.waiting.pop(channel, None)
                    if waiter is not None and not waiter.done():
                        waiter.set_result(message)
                        continue
                    arrived = local.arrived.setdefault(channel, [])
                    if len(arrived) >= self.capacity:
                        arrived.pop(0)
                    arrived.append(message)
        except _NobodyWaits:
            return
        except Exception as error:  # e.g. Redis went away: every waiter hears it, and waits
            waiting, local.waiting = local.waiting, {}
            for waiter in waiting.values():
                if not waiter.done():
                    waiter.set_exception(error)

    def _unreachable(self, error: Exception) -> None:
        if self._reachable is None or self._reachable.is_set():
            log.warning("channel layer unreachable (%s); sockets wait for it", error)
            self._reachable = asyncio.Event()
            self._probe_task = asyncio.ensure_future(self._probe(self._reachable))

    async def _probe(self, reachable: asyncio.Event) -> None:
        """Ping Redis until it answers, then let every waiting receive() try again."""
        while True:
            await asyncio.sleep(PROBE_SECONDS * random.uniform(0.8, 1.2))
            try:
                await self.connection(0).ping()
            except UNREACHABLE:
                continue
            except Exception:  # anything else is not ours to judge: let receive() see it
                log.exception("channel layer probe failed")
            log.warning("channel layer reachable again")
            reachable.set()
            return
