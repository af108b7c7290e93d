"""What an operator watches: /health naming each dependency, /metrics counting messages,
errors and connections (to allowed addresses only), and JSON log lines carrying the station."""

import asyncio
import json
import logging

import pytest

from csms import logs, metrics
from tests.support.chargers import ChargerSocket
from tests.support.personas import make_station

pytestmark = pytest.mark.django_db(transaction=True)


def test_health_reports_each_dependency(client):
    response = client.get("/health")
    body = response.json()
    assert response.status_code == 200 and body["status"] == "ok"
    assert body["checks"]["database"]["ok"] and body["checks"]["channel_layer"]["ok"]
    assert client.get("/health/live").status_code == 200


def test_health_is_503_naming_what_is_down(client, settings):
    from channels.layers import channel_layers

    settings.CHANNEL_LAYERS = {"default": {
        "BACKEND": "csms.layers.ResilientRedisChannelLayer",
        "CONFIG": {"hosts": ["redis://127.0.0.1:9/0"]}}}  # nothing listens on port 9
    channel_layers.backends.clear()
    try:
        response = client.get("/health")
    finally:
        channel_layers.backends.clear()
    body = response.json()
    assert response.status_code == 503 and body["status"] == "unavailable"
    assert body["checks"]["database"]["ok"] and not body["checks"]["channel_layer"]["ok"]
    assert body["checks"]["channel_layer"]["error"]  # its name only: no hosts, no secrets


def test_metrics_count_messages_errors_and_connections(client):
    make_station("METERED")
    held_before = metrics.CHARGERS.labels("2.0.1")._value.get()

    async def traffic() -> None:
        cp = ChargerSocket("METERED", "2.0.1")
        assert await cp.connect()
        await cp.ok("Heartbeat", {})
        await cp.call("Heartbeat", {"unexpected": 1})
        await cp.close()

    asyncio.run(traffic())
    text = client.get("/metrics").content.decode()
    assert 'csms_ocpp_messages_total{action="Heartbeat",outcome="result",version="2.0.1"}' in text
    assert 'csms_ocpp_errors_total{code="FormatViolation",version="2.0.1"}' in text
    assert 'csms_ocpp_message_seconds_bucket{action="Heartbeat",le="0.05"}' in text
    assert 'csms_chargers_connected{version="2.0.1"}' in text
    assert metrics.CHARGERS.labels("2.0.1")._value.get() == held_before  # closed: not held
    assert 'csms_charger_connections_total{outcome="admitted"}' in text


def test_metrics_are_refused_to_addresses_not_allowed(client):
    assert client.get("/metrics", REMOTE_ADDR="203.0.113.9").status_code == 403


def test_metrics_with_a_token_need_it(client, settings):
    settings.METRICS_TOKEN = "scraper-token-0123456789"
    assert client.get("/metrics").status_code == 403
    assert client.get("/metrics", headers={"Authorization": "Bearer wrong"}).status_code == 403
    answer = client.get("/metrics", headers={"Authorization": "Bearer scraper-token-0123456789"})
    assert answer.status_code == 200 and b"csms_" in answer.content


def test_json_log_lines_carry_the_station_id():
    formatter = logs.JsonFormatter()
    record = logging.LogRecord("csms.gateway", logging.INFO, "", 0, "stored %s", ("x",), None)
    token = logs.station.set("CP-7")
    try:
        logs.StationFilter().filter(record)
    finally:
        logs.station.reset(token)
    line = json.loads(formatter.format(record))
    assert (line["station"], line["message"], line["level"]) == ("CP-7", "stored x", "INFO")
