"""The gateway's way to the database: the one ORM thread, without per-call overhead.

Channels' database_sync_to_async recycles connections around every call, which with
CONN_HEALTH_CHECKS costs a `SELECT 1` round trip per charger message. Here a connection is kept
until it fails (a failed call drops it; the next message reconnects) or reaches CONN_MAX_AGE.
"""

import time

from asgiref.sync import sync_to_async
from django.db import close_old_connections, connection

from stations import events


def _db_call(function, *args):
    """`function(*args)` on this (the ORM) thread; see the module's docstring."""
    try:
        return function(*args)
    except Exception:
        close_old_connections()
        raise
    finally:
        if connection.close_at is not None and time.monotonic() >= connection.close_at:
            connection.close()


in_db_thread = sync_to_async(_db_call, thread_sensitive=True)


def _collecting(function, *args) -> list[dict]:
    """Run a writer, keeping the events it publishes for the event loop to send: publishing
    from the ORM thread would block it on a hop back to the loop (and hang at shutdown)."""
    with events.collected() as published:
        function(*args)
    return published


async def write_and_publish(function, *args) -> None:
    """A domain writer called from the event loop: on the ORM thread, events after commit."""
    await events.asend(await in_db_thread(_collecting, function, *args))
