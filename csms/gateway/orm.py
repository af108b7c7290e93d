"""The gateway's way to the database: a few ORM threads, without per-call overhead.

Channels' database_sync_to_async runs every ORM call of a process on one thread, so a process
stores one charger message at a time, and much of that time the thread only waits for
PostgreSQL. With OCPP_DB_THREADS > 1, that many threads (each with its own connection) store
the messages of different chargers side by side; one charger's messages stay in order, because
its consumer awaits each before it reads the next frame. The default is the one thread the rest
of Django's sync code in the process uses too: code that takes row locks in different orders
(the local lists) deadlocks when gateway and views write side by side.

It also recycles connections around every call, which with CONN_HEALTH_CHECKS costs a
`SELECT 1` round trip per message. Here a connection is kept until it fails (a failed call drops
it; the next message reconnects) or reaches CONN_MAX_AGE.
"""

import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

from asgiref.sync import sync_to_async
from django.conf import settings
from django.db import connection

from stations import events

T = TypeVar("T")


def drop_if_broken() -> None:
    """After a failure: a connection that no longer works is closed (the next call opens a new
    one); a working one is kept, and so is the transaction it may be in."""
    if connection.connection is not None and not connection.is_usable():
        connection.close()


def _db_call(function, *args):
    """`function(*args)` on this (the ORM) thread; see the module's docstring."""
    try:
        return function(*args)
    except Exception:
        drop_if_broken()
        raise
    finally:
        if connection.close_at is not None and time.monotonic() >= connection.close_at:
            connection.close()


if settings.OCPP["DB_THREADS"] > 1:
    in_db_thread = sync_to_async(_db_call, thread_sensitive=False, executor=ThreadPoolExecutor(
        settings.OCPP["DB_THREADS"], thread_name_prefix="orm"))
else:  # the thread Django's own sync code (views, eager tasks) runs on: nothing in parallel
    in_db_thread = sync_to_async(_db_call, thread_sensitive=True)


def _collecting(function: Callable[..., T],
                *args) -> tuple[T | None, BaseException | None, list[dict]]:
    """Run a writer, keeping the events it publishes for the event loop to send: publishing
    from the ORM thread would block it on a hop back to the loop (and hang at shutdown). A
    writer that fails may have committed something first (a refused connection is recorded,
    then raised): what it committed is announced too."""
    with events.collected() as published:
        try:
            return function(*args), None, published
        except Exception as failure:
            return None, failure, published


async def write_and_publish(function: Callable[..., T], *args) -> T:
    """A domain writer called from the event loop: on the ORM thread, events after commit.
    Returns what the writer returns, or raises what it raised."""
    result, failure, published = await in_db_thread(_collecting, function, *args)
    await events.asend(published)
    if failure is not None:
        raise failure
    return result
