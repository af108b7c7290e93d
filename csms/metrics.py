"""Prometheus metrics of one server process, served as text at /metrics.

Per process: every ASGI server process counts what it handles itself. Behind a load balancer,
scrape each process on its own port (the Procfile gives each one), and let Prometheus sum them
(`sum by (version) (csms_chargers_connected)`). Only addresses in METRICS_ALLOWED may read them.

On the hot path a metric costs a dictionary lookup and an addition: label children are cached
here, never built per message.
"""

import gc
import time
from functools import cache

from django.conf import settings
from django.http import HttpRequest, HttpResponse, HttpResponseForbidden
from django.utils.crypto import constant_time_compare
from prometheus_client import CONTENT_TYPE_LATEST, Counter, Gauge, Histogram, generate_latest

from csms.proxies import client_address

CHARGERS = Gauge("csms_chargers_connected", "Charger sockets this process holds",
                 ["version"])
MESSAGES = Counter("csms_ocpp_messages_total",
                   "OCPP CALLs received from chargers, by action and how they were answered",
                   ["version", "action", "outcome"])
ERRORS = Counter("csms_ocpp_errors_total", "CALLERRORs sent to chargers, by error code",
                 ["version", "code"])
LATENCY = Histogram(
    "csms_ocpp_message_seconds",
    "From a charger's CALL received to our answer sent (stored and committed in between)",
    ["action"],
    # 75 and 150 ms: finer steps where a loaded server's p99 falls.
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.25, 0.5, 1, 2.5, 5,
             10),
)
BATCH = Histogram(
    "csms_ocpp_batch_messages",
    "Charger messages stored per database transaction (group commit, csms/gateway/writer.py)",
    buckets=(1, 2, 5, 10, 20, 50, 100, 200, 500),
)
CALLS = Counter("csms_calls_total", "Commands sent to chargers, by how they ended",
                ["action", "status"])
CONNECTIONS = Counter("csms_charger_connections_total",
                      "Charger connection attempts: admitted, or refused and why", ["outcome"])
DISCONNECTS = Counter("csms_charger_disconnects_total",
                      "Charger sockets closed, by who closed them", ["reason"])
GC_PAUSES = Histogram(
    "csms_gc_pause_seconds",
    "The garbage collector's pauses of this process, by generation (the whole process waits)",
    ["generation"],
    buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5),
)
SWEPT = Counter("csms_stations_swept_total",
                "Stations marked offline because no live process held them any more")


@cache
def message_counter(version: str, action: str, outcome: str):
    return MESSAGES.labels(version, action, outcome)


@cache
def latency_histogram(action: str):
    return LATENCY.labels(action)


@cache
def error_counter(version: str, code: str):
    return ERRORS.labels(version, code)


def time_collections() -> None:
    """Time every collection of this process into GC_PAUSES: with thousands of sockets held a
    full collection can stop every charger's answer for a long while, a p99 no other metric
    would explain."""
    generations = [GC_PAUSES.labels(str(n)) for n in range(3)]
    started = 0.0

    def collected(phase: str, info: dict) -> None:
        nonlocal started
        if phase == "start":
            started = time.perf_counter()
        else:
            generations[info["generation"]].observe(time.perf_counter() - started)

    gc.callbacks.append(collected)


def metrics_view(request: HttpRequest) -> HttpResponse:
    # The same rule as for chargers: a configured proxy's X-Forwarded-For is believed.
    scope = getattr(request, "scope", None) or {"client": (request.META["REMOTE_ADDR"], 0)}
    if client_address(scope) not in settings.METRICS_ALLOWED:
        return HttpResponseForbidden("Metrics are served to the addresses in METRICS_ALLOWED.\n",
                                     content_type="text/plain")
    if settings.METRICS_TOKEN and not constant_time_compare(
            request.headers.get("Authorization", ""), f"Bearer {settings.METRICS_TOKEN}"):
        return HttpResponseForbidden("Metrics are served with the METRICS_TOKEN bearer token.\n",
                                     content_type="text/plain")
    return HttpResponse(generate_latest(), content_type=CONTENT_TYPE_LATEST)
