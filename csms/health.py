"""Health endpoints for load balancers and monitoring.

/health       200 when this process can reach the database, the channel layer and the Celery
              broker, 503 (naming what failed) when it cannot. For monitoring and deploy checks.
/health/live  200 while the process serves requests at all: for a load balancer's routing, which
              should not pull every process at once because the database is down.

Every check is bounded in time, so a hung dependency makes /health answer 503, never hang.
"""

import asyncio
import time
from collections.abc import Awaitable, Callable

from asgiref.sync import sync_to_async
from channels.layers import get_channel_layer
from django.conf import settings
from django.db import connection
from django.http import HttpRequest, JsonResponse

from csms.celery import app

CHECK_SECONDS = 3.0


def _database() -> None:
    # Its own thread and connection: the check must not queue behind the gateway's ORM thread,
    # and must not leave a connection open in a pool thread.
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
    finally:
        connection.close()


async def _channel_layer() -> None:
    layer = get_channel_layer()
    channel = await layer.new_channel()
    await layer.send(channel, {"type": "health.ping"})
    if (await layer.receive(channel)).get("type") != "health.ping":
        raise RuntimeError("channel layer returned another message")


def _broker() -> None:
    with app.connection_for_write() as broker:
        broker.ensure_connection(max_retries=1, timeout=CHECK_SECONDS)


async def _timed(check: Callable[[], Awaitable[None]]) -> dict:
    started = time.monotonic()
    try:
        async with asyncio.timeout(CHECK_SECONDS):
            await check()
    except Exception as error:  # what failed is the answer; its details stay in our logs
        return {"ok": False, "error": type(error).__name__,
                "ms": round((time.monotonic() - started) * 1000, 1)}
    return {"ok": True, "ms": round((time.monotonic() - started) * 1000, 1)}


async def health(request: HttpRequest) -> JsonResponse:
    checks = {
        "database": sync_to_async(_database, thread_sensitive=False),
        "channel_layer": _channel_layer,
    }
    if not settings.CELERY_TASK_ALWAYS_EAGER:  # embedded: tasks run in-process, no broker
        checks["broker"] = sync_to_async(_broker, thread_sensitive=False)
    results = await asyncio.gather(*(_timed(check) for check in checks.values()))
    report = dict(zip(checks, results, strict=True))
    ok = all(result["ok"] for result in results)
    return JsonResponse({"status": "ok" if ok else "unavailable", "checks": report},
                        status=200 if ok else 503)


async def live(request: HttpRequest) -> JsonResponse:
    return JsonResponse({"status": "ok"})
