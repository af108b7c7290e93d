"""Who may connect: ids, subprotocols, passwords, profiles, onboarding, rate limits, takeover."""

import pytest
from asgiref.sync import async_to_sync
from hypothesis import given
from hypothesis import strategies as st

from csms.gateway import auth, liveness
from stations.models import RefusedConnection, Station
from tests.support.chargers import ChargerSocket, basic
from tests.support.personas import CHARGER_PASSWORD, make_station

pytestmark = pytest.mark.django_db(transaction=True)


def connects(socket: ChargerSocket) -> bool:
    async def attempt():
        connected = await socket.connect()
        if connected:
            await socket.close()
        return connected

    return async_to_sync(attempt)()


def refusals() -> list[str]:
    return list(RefusedConnection.objects.order_by("created_at").values_list("reason", flat=True))


def test_good_password_connects_and_is_marked_connected():
    make_station("GOOD")

    async def flow():
        cp = ChargerSocket("GOOD")
        assert await cp.connect()
        station = await Station.objects.aget(pk="GOOD")
        assert station.connected and station.ocpp_version == "1.6"
        await cp.close()

    async_to_sync(flow)()
    assert not Station.objects.get(pk="GOOD").connected
    assert refusals() == []


@pytest.mark.parametrize(("password", "headers", "reason"), [
    ("wrong-password-0123456789", None, "wrong_password"),
    (None, None, "no_credentials"),
    (None, [basic("SOMEONE-ELSE", CHARGER_PASSWORD)], "wrong_username"),
    (None, [(b"authorization", b"Basic !!notbase64")], "no_credentials"),
])
def test_bad_credentials_are_refused_and_recorded(password, headers, reason):
    make_station("LOCKED")
    assert not connects(ChargerSocket("LOCKED", password=password, headers=headers))
    assert refusals() == [reason]
    (refusal,) = RefusedConnection.objects.all()
    assert refusal.station_id == "LOCKED" and refusal.remote_addr == "127.0.0.1"
    assert CHARGER_PASSWORD not in refusal.detail


def test_unknown_station_is_refused_by_default():
    assert not connects(ChargerSocket("NOBODY"))
    assert refusals() == ["unknown_station"]
    assert not Station.objects.filter(pk="NOBODY").exists()


@pytest.mark.parametrize("station_id", ["a" * 49, "bad:colon", "sp%20ace", "dir/sub"])
def test_invalid_station_ids_are_refused(station_id):
    assert not connects(ChargerSocket(station_id, password=None))
    assert refusals() == ["invalid_id"]


def test_no_matching_subprotocol_is_refused_at_the_handshake():
    """Refused before the upgrade (400 where the server can say it: tests/gateway/
    test_closing.py runs the real servers)."""
    make_station("OLDPROTO")
    assert not connects(ChargerSocket("OLDPROTO", subprotocols=["ocpp1.5", "ocpp2.1"]))
    assert refusals() == ["no_subprotocol"]


def test_profile_zero_only_when_set_explicitly():
    make_station("OPEN", profile=0)
    assert connects(ChargerSocket("OPEN", password=None))
    assert Station._meta.get_field("security_profile").default == 1


def test_tls_profiles_need_a_trusted_proxy(settings):
    make_station("TLS", profile=2)
    assert not connects(ChargerSocket("TLS", headers=[(b"x-forwarded-proto", b"https")]))
    settings.TRUSTED_PROXIES = ["10.9.8.7"]
    proxied = ChargerSocket("TLS", headers=[(b"x-forwarded-proto", b"https"),
                                            (b"x-forwarded-for", b"192.0.2.10")],
                            client=("10.9.8.7", 443))
    assert connects(proxied)
    assert refusals() == ["tls_required"]


def test_client_certificate_profile_checks_the_common_name(settings):
    make_station("CERT", profile=3)
    settings.TRUSTED_PROXIES = ["10.9.8.7"]

    def with_cert(common_name):
        return ChargerSocket("CERT", password=None, client=("10.9.8.7", 443), headers=[
            (b"x-forwarded-proto", b"https"), (b"x-ssl-client-verify", b"SUCCESS"),
            (b"x-ssl-client-s-dn", f"CN={common_name},O=Operator".encode())])

    assert not connects(with_cert("ANOTHER-STATION"))
    assert connects(with_cert("CERT"))
    assert refusals() == ["invalid_certificate"]


def test_onboarding_creates_pending_station_answered_pending(settings):
    settings.OCPP = {**settings.OCPP, "ONBOARDING": True}

    async def flow():
        cp = ChargerSocket("NEWCOMER", password=None)
        assert await cp.connect()
        boot = await cp.ok("BootNotification", {"chargePointVendor": "V",
                                                "chargePointModel": "M"})
        assert boot["status"] == "Pending"
        # Until accepted it may only register: anything else is a SecurityError.
        refused = await cp.call("StatusNotification", {"connectorId": 0, "errorCode": "NoError",
                                                       "status": "Available"})
        assert refused[2] == "SecurityError"
        await Station.objects.filter(pk="NEWCOMER").aupdate(
            registration=Station.Registration.ACCEPTED)
        boot = await cp.ok("BootNotification", {"chargePointVendor": "V",
                                                "chargePointModel": "M"})
        assert boot["status"] == "Accepted"
        await cp.ok("StatusNotification", {"connectorId": 0, "errorCode": "NoError",
                                           "status": "Available"})
        await cp.close()

    async_to_sync(flow)()
    assert Station.objects.get(pk="NEWCOMER").vendor == "V"


def test_rejected_station_is_refused():
    make_station("BANNED", registration=Station.Registration.REJECTED)
    assert not connects(ChargerSocket("BANNED"))
    assert refusals() == ["rejected"]


def test_repeated_failures_from_one_address_are_rate_limited(settings):
    settings.OCPP = {**settings.OCPP, "AUTH_FAILURE_LIMIT": 3}
    make_station("TARGET")
    attacker = ("203.0.113.5", 40000)
    for _ in range(3):
        assert not connects(ChargerSocket("TARGET", password="guess-0123456789abc",
                                          client=attacker))
    # Now even the right password from that address is refused; other addresses are not.
    assert not connects(ChargerSocket("TARGET", client=attacker))
    assert connects(ChargerSocket("TARGET", client=("198.51.100.7", 40000)))
    assert refusals() == ["wrong_password"] * 3 + ["rate_limited"]


def test_second_connection_replaces_the_first_only_when_authenticated():
    make_station("TWICE")

    async def flow():
        live = ChargerSocket("TWICE")
        assert await live.connect()
        # A failed attempt never displaces the live charger.
        intruder = ChargerSocket("TWICE", password="not-the-password-000")
        assert not await intruder.connect()
        assert await live.ok("Heartbeat", {})
        # The real charger reconnecting (e.g. after a network change) takes over.
        again = ChargerSocket("TWICE")
        assert await again.connect()
        closed = await live.communicator.receive_output(timeout=5)
        assert closed["type"] == "websocket.close"
        assert await again.ok("Heartbeat", {})
        station = await Station.objects.aget(pk="TWICE")
        assert station.connected
        await again.close()

    async_to_sync(flow)()
    assert not Station.objects.get(pk="TWICE").connected


@given(st.binary(max_size=300))
def test_any_authorization_header_is_read_as_credentials_or_none(value):
    credentials = auth.basic_credentials({"headers": [(b"authorization", value)]})
    assert credentials is None or all(isinstance(part, str) for part in credentials)


def test_the_old_socket_closing_after_a_reconnect_leaves_the_station_online():
    """The old connection of a reconnected charger may close after the new one was admitted,
    without ever hearing that it was displaced (a channel layer that lost its group, as a
    restarted Redis does): its close does not take the station offline."""
    make_station("RECONNECTS")

    async def flow():
        old = ChargerSocket("RECONNECTS")
        assert await old.connect()
        [holder] = liveness.held()
        await holder.channel_layer.group_discard(holder.group, holder.channel_name)
        new = ChargerSocket("RECONNECTS")
        assert await new.connect()
        await old.close()
        station = await Station.objects.aget(pk="RECONNECTS")
        assert await new.ok("Heartbeat", {})
        await new.close()
        return station.connected

    assert async_to_sync(flow)()
    assert not Station.objects.get(pk="RECONNECTS").connected
