"""The Redis channel layer, made to survive Redis going away and to bear connection bursts.

channels-redis as shipped has two failure modes that cost a charging network its connections:
- Every consumer waits in `receive()` on the layer. When Redis restarts, that raises, the
  consumer ends, and the server closes the socket: every charger of the process is dropped. Here
  `receive()` waits for Redis to come back instead (one probe per process, not one per socket),
  and the sockets stay open. Messages sent meanwhile are lost, as the layer's contract allows:
  commands are persisted as Call rows and end as timed out (stations/commands.py).
- redis-py's pool raises MaxConnectionsError the moment it is exhausted, so a burst of charger
  connects (each a group_add) fails some at once. Here the pool is a blocking one: a caller waits
  for a free connection, for a bounded time.
- redis-py 8 reads with a 5 s socket timeout by default, and channels-redis waits for messages
  with a 5 s BZPOPMIN: on an idle process the read times out, receive() raises, and daphne
  closes the socket. Every charger that stayed quiet for five seconds was dropped. Here the
  socket timeout outlasts the blocking pop.

A restarted Redis has also forgotten the groups; csms.gateway.liveness re-joins them.
"""

import asyncio
import logging
import random

from channels_redis.core import RedisChannelLayer
from redis import asyncio as aioredis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

log = logging.getLogger(__name__)

UNREACHABLE = (RedisConnectionError, RedisTimeoutError, ConnectionError, OSError)
PROBE_SECONDS = 1.0


class ResilientRedisChannelLayer(RedisChannelLayer):
    def __init__(self, *args, max_connections: int = 200, pool_timeout: float = 10.0,
                 **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.max_connections = max_connections
        self.pool_timeout = pool_timeout
        self._reachable: asyncio.Event | None = None
        self._probe_task: asyncio.Task | None = None

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
                return await super().receive(channel)
            except UNREACHABLE as error:
                self._unreachable(error)

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
