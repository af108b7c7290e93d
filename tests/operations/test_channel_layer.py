"""The Redis channel layer's process-local channels (csms/layers.py): one reader per process
hands each message to the consumer it is for, in order, in little memory, and a receiver never
sees Redis going away."""

import asyncio
import tracemalloc
from collections.abc import Iterator

import pytest

from csms.layers import ResilientRedisChannelLayer
from tests.support.servers import REDIS_SERVER, kill, redis_server

pytestmark = pytest.mark.skipif(REDIS_SERVER is None, reason="needs redis-server")


@pytest.fixture
def redis_port() -> Iterator[int]:
    with redis_server() as (port, _):
        yield port


def layer(port: int, **config) -> ResilientRedisChannelLayer:
    return ResilientRedisChannelLayer(hosts=[f"redis://127.0.0.1:{port}/0"], prefix="t",
                                      **config)


def test_each_message_reaches_its_own_channel_in_order(redis_port):
    async def scenario() -> tuple[list[dict], list[dict]]:
        channels = layer(redis_port)
        names = [await channels.new_channel() for _ in range(50)]
        receiving = [asyncio.create_task(channels.receive(name)) for name in names]
        await asyncio.sleep(0.1)
        for index, name in reversed(list(enumerate(names))):
            await channels.send(name, {"type": "t", "n": index})
        got = await asyncio.wait_for(asyncio.gather(*receiving), 10)
        # A busy consumer (not receiving) gets what came meanwhile, in order, when it asks.
        busy = names[0]
        for n in range(3):
            await channels.send(busy, {"type": "t", "n": n})
        waiting = asyncio.create_task(channels.receive(names[1]))  # keeps the reader going
        later = [await asyncio.wait_for(channels.receive(busy), 10) for _ in range(3)]
        waiting.cancel()
        await channels.close_pools()
        return got, later

    got, later = asyncio.run(scenario())
    assert [message["n"] for message in got] == list(range(50))
    assert [message["n"] for message in later] == [0, 1, 2]


def test_a_busy_channel_keeps_at_most_capacity_messages_the_oldest_dropped(redis_port):
    async def scenario() -> list[int]:
        channels = layer(redis_port, capacity=2)
        busy, other = await channels.new_channel(), await channels.new_channel()
        waiting = asyncio.create_task(channels.receive(other))
        await asyncio.sleep(0.1)
        for n in range(3):
            await channels.send(busy, {"type": "t", "n": n})
            await asyncio.sleep(0.1)  # read into the process before the next one
        got = [(await asyncio.wait_for(channels.receive(busy), 5))["n"] for _ in range(2)]
        waiting.cancel()
        await channels.close_pools()
        return got

    assert asyncio.run(scenario()) == [1, 2]


def test_what_is_sent_after_a_receiver_was_cancelled_still_arrives(redis_port):
    """A consumer's receive is cancelled between two messages (Channels does that when it
    ends); a message sent afterwards waits for the next receive on that channel."""
    async def scenario() -> list[int]:
        channels = layer(redis_port)
        name = await channels.new_channel()
        got = []
        for n in range(3):
            waiting = asyncio.create_task(channels.receive(name))
            await asyncio.sleep(0.1)
            waiting.cancel()
            await asyncio.gather(waiting, return_exceptions=True)
            await channels.send(name, {"type": "t", "n": n})
            got.append((await asyncio.wait_for(channels.receive(name), 10))["n"])
        await channels.close_pools()
        return got

    assert asyncio.run(scenario()) == [0, 1, 2]


@pytest.mark.multiprocess
def test_receivers_wait_for_redis_to_come_back():
    """Redis gone: the waiting receivers raise nothing (their sockets stay open) and get what
    is sent once it is back."""
    async def scenario(redis_port: int, process) -> tuple[bool, list[dict]]:
        channels = layer(redis_port)
        names = [await channels.new_channel() for _ in range(3)]
        receiving = [asyncio.create_task(channels.receive(name)) for name in names]
        await asyncio.sleep(0.2)
        kill(process)
        await asyncio.sleep(1.5)
        quiet = not any(task.done() for task in receiving)
        with redis_server(redis_port):
            for index, name in enumerate(names):
                await asyncio.wait_for(_send_when_up(channels, name, index), 20)
            got = await asyncio.wait_for(asyncio.gather(*receiving), 20)
        await channels.close_pools()
        return quiet, got

    with redis_server() as (port, process):
        quiet, got = asyncio.run(scenario(port, process))
    assert quiet
    assert [message["n"] for message in got] == [0, 1, 2]


async def _send_when_up(channels: ResilientRedisChannelLayer, name: str, n: int) -> None:
    while True:
        try:
            await channels.send(name, {"type": "t", "n": n})
            return
        except Exception:
            await asyncio.sleep(0.2)


def test_a_waiting_receiver_costs_little_memory(redis_port):
    """channels-redis as shipped: ~8 KB per waiting consumer (a queue, two tasks). Here: a
    future and a dict entry, plus the receive coroutine itself."""
    async def scenario() -> float:
        channels = layer(redis_port)
        names = [await channels.new_channel() for _ in range(1001)]
        first = asyncio.create_task(channels.receive(names[0]))  # the reader, once
        await asyncio.sleep(0.1)
        tracemalloc.start()
        before = tracemalloc.get_traced_memory()[0]
        receiving = [asyncio.create_task(channels.receive(name)) for name in names[1:]]
        await asyncio.sleep(0.2)
        per_receiver = (tracemalloc.get_traced_memory()[0] - before) / 1000
        tracemalloc.stop()
        for task in [first, *receiving]:
            task.cancel()
        await asyncio.gather(first, *receiving, return_exceptions=True)
        await channels.close_pools()
        return per_receiver

    # The asyncio task that receives (as Channels' consumer runs it) is most of it.
    assert asyncio.run(scenario()) < 2500
