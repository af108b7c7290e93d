"""A command's numbers reach the schema check as DRF reads JSON (int, float) and as the domain
builds them (Decimal): whatever a person sends, the API answers a readable 400 or sends the
command, never a 500 (a float `limit` against 1.6's `multipleOf: 0.1` once raised TypeError)."""

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from stations.models import Call, Station

pytestmark = pytest.mark.django_db

STATIONS = "/api/v1/stations/"


def profile_16(limit: object, start: object = 0) -> dict:
    return {"connectorId": 1, "csChargingProfiles": {
        "chargingProfileId": 1, "stackLevel": 0, "chargingProfilePurpose": "TxDefaultProfile",
        "chargingProfileKind": "Absolute", "chargingSchedule": {
            "chargingRateUnit": "A",
            "chargingSchedulePeriod": [{"startPeriod": start, "limit": limit}]}}}


def profile_201(limit: object, start: object = 0) -> dict:
    return {"evseId": 1, "chargingProfile": {
        "id": 1, "stackLevel": 0, "chargingProfilePurpose": "TxDefaultProfile",
        "chargingProfileKind": "Absolute", "chargingSchedule": [{
            "id": 1, "chargingRateUnit": "A",
            "chargingSchedulePeriod": [{"startPeriod": start, "limit": limit}]}]}}


def raw_call(client, station_id: str, action: str, payload: object):
    return client.post(f"{STATIONS}{station_id}/calls/", {"action": action, "payload": payload},
                       format="json")


@pytest.mark.parametrize("limit", [6, 6.0, 21.4, 32.0])
def test_a_16_charging_profile_with_a_decimal_limit_is_sent(api, operator, station_a, limit):
    Station.objects.filter(pk=station_a.pk).update(ocpp_version="1.6")
    response = raw_call(api(operator), station_a.pk, "SetChargingProfile", profile_16(limit))
    assert response.status_code == 201, response.content
    assert response.json()["status"] == "not_connected"


@pytest.mark.parametrize("limit", [6.05, 21.45, 0.01, 1e-300])
def test_a_limit_off_the_tenth_is_a_readable_400_that_does_not_echo_it(api, operator, station_a,
                                                                       limit):
    Station.objects.filter(pk=station_a.pk).update(ocpp_version="1.6")
    response = raw_call(api(operator), station_a.pk, "SetChargingProfile", profile_16(limit))
    assert response.status_code == 400, response.content
    detail = response.json()["detail"]
    assert "limit: is not a multiple of 0.1" in detail
    assert repr(limit) not in detail and str(limit) not in detail
    assert Call.objects.count() == 0


numbers = st.one_of(st.integers(), st.floats(allow_nan=False, allow_infinity=False),
                    st.decimals(allow_nan=False, allow_infinity=False).map(float),
                    st.sampled_from([2**31, 2**63, 10**400, -1, 0.1, 1e-320, 1e308]))


@settings(max_examples=60, deadline=None, database=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(version=st.sampled_from(["1.6", "2.0.1"]), limit=numbers, start=numbers)
def test_no_number_in_a_charging_profile_makes_a_500(api, operator, station_a, version, limit,
                                                      start):
    Station.objects.filter(pk=station_a.pk).update(ocpp_version=version)
    payload = (profile_16 if version == "1.6" else profile_201)(limit, start)
    response = raw_call(api(operator), station_a.pk, "SetChargingProfile", payload)
    assert response.status_code in (201, 400), response.content
