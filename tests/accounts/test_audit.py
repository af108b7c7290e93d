"""The audit log: append-only, written by the actions themselves, secrets masked, readable and
exportable by operator admins only."""

import csv
import io

import pytest

from accounts import audit, people
from accounts.models import AuditEntry, Membership
from stations.services import commands, local_lists
from tests.support.personas import make_station

pytestmark = pytest.mark.django_db
STATIONS = "/api/v1/stations/"


def test_entries_cannot_be_changed_or_deleted(operator):
    entry = audit.record(operator, AuditEntry.Action.EXPORT, "exported 3 cards")
    entry.summary = "nothing happened"
    with pytest.raises(TypeError):
        entry.save()
    with pytest.raises(TypeError):
        entry.delete()
    with pytest.raises(TypeError):
        AuditEntry.objects.filter(pk=entry.pk).update(summary="nothing")
    with pytest.raises(TypeError):
        AuditEntry.objects.all().delete()
    with pytest.raises(TypeError):
        AuditEntry.objects.bulk_update([entry], ["summary"])
    assert AuditEntry.objects.get(pk=entry.pk).summary == "exported 3 cards"


def test_a_deleted_user_is_still_named(operator, personas):
    user = people.user_create(operator, "temp", "Correct-Horse-9")
    entry = audit.record(user, AuditEntry.Action.EXPORT, "exported 1 card")
    user.delete()
    entry.refresh_from_db()
    assert entry.actor is None and entry.actor_name == "temp"


@pytest.mark.parametrize(("details", "kept"), [
    ({"password": "s3cret-s3cret-s3cret"}, {"password": audit.MASK}),
    ({"payload": {"key": "AuthorizationKey", "value": "0102030405060708"}},
     {"payload": {"key": "AuthorizationKey", "value": audit.MASK}}),
    ({"payload": {"setVariableData": [{
        "component": {"name": "SecurityCtrlr"}, "variable": {"name": "BasicAuthPassword"},
        "attributeValue": "a-new-charger-password"}]}},
     {"payload": {"setVariableData": [{
         "component": {"name": "SecurityCtrlr"}, "variable": {"name": "BasicAuthPassword"},
         "attributeValue": audit.MASK}]}}),
    ({"payload": {"key": "HeartbeatInterval", "value": "300"}},
     {"payload": {"key": "HeartbeatInterval", "value": "300"}}),
])
def test_secrets_are_masked(operator, details, kept):
    assert audit.record(operator, AuditEntry.Action.COMMAND, "x", details=details).details == (
        kept)


def test_commands_people_send_are_audited_with_secrets_masked(operator, station_a):
    station_a.ocpp_version = "1.6"
    station_a.save()
    call = commands.call_send(station_a, "ChangeConfiguration",
                              {"key": "AuthorizationKey", "value": "0102030405060708090a"},
                              user=operator)
    assert call.status == "not_connected"
    entry = AuditEntry.objects.get(action="station.command")
    assert (entry.actor_name, entry.summary, entry.target) == (
        "operator", "sent ChangeConfiguration to STATION-A", "station:STATION-A")
    assert "0102030405060708090a" not in str(entry.details)
    commands.call_enqueue(station_a, "ClearCache", {})  # the system's own: not audited
    assert AuditEntry.objects.filter(action="station.command").count() == 1


def test_station_password_changes_are_audited_without_the_password(api, operator, site_a):
    secret = "a-charger-secret-0001"
    client = api(operator)
    client.post(STATIONS, {"id": "AUD-1", "site": site_a.pk, "security_profile": 1,
                           "password": secret}, format="json")
    client.patch(f"{STATIONS}AUD-1/", {"password": secret[::-1]}, format="json")
    client.patch(f"{STATIONS}AUD-1/", {"security_profile": 2}, format="json")
    client.patch(f"{STATIONS}AUD-1/", {"registration": "Accepted"}, format="json")
    entries = AuditEntry.objects.filter(action="station.credentials").order_by("id")
    assert [e.summary for e in entries] == [
        "password set of station AUD-1", "password changed of station AUD-1",
        "security profile set of station AUD-1"]
    everything = str(list(AuditEntry.objects.values()))
    assert secret not in everything and secret[::-1] not in everything


def test_role_changes_through_the_api_are_audited(api, operator, personas):
    client = api(operator)
    created = client.post("/api/v1/memberships/", {
        "user": "fleet", "organization": personas.org_a.pk, "role": "property_manager"},
        format="json")
    assert created.status_code == 201, created.content
    pk = created.json()["id"]
    assert client.patch(f"/api/v1/memberships/{pk}/", {"role": "finance"},
                        format="json").json()["role"] == "finance"
    assert client.patch(f"/api/v1/memberships/{pk}/", {"organization": personas.org_b.pk},
                        format="json").status_code == 400
    assert client.delete(f"/api/v1/memberships/{pk}/").status_code == 204
    assert list(AuditEntry.objects.order_by("id").values_list("action", flat=True)) == [
        "member.added", "member.role_changed", "member.removed"]
    assert Membership.objects.filter(user=personas.fleet).count() == 1


def test_audit_api_filters_and_exports_for_operator_admins_only(api, operator, manager, fleet,
                                                               finance, personas,
                                                               django_assert_max_num_queries):
    audit.record(fleet, AuditEntry.Action.CARD_BLOCKED, "blocked card X", target="card:7")
    for n in range(30):
        audit.record(operator, AuditEntry.Action.CARD_ISSUED, f"issued card {n}",
                     target=f"card:{n + 100}")
    client = api(operator)
    with django_assert_max_num_queries(6):
        listed = client.get("/api/v1/audit/?action=card&actor=fleet").json()
    assert [row["summary"] for row in listed["results"]] == ["blocked card X"]
    assert client.get("/api/v1/audit/?since=yesterday").status_code == 400
    export = client.get("/api/v1/audit/export/?target=card:7")
    rows = list(csv.DictReader(io.StringIO(b"".join(export.streaming_content).decode())))
    assert [row["summary"] for row in rows] == ["blocked card X"]
    for user in (manager, fleet, finance):
        assert api(user).get("/api/v1/audit/").status_code == 403
        assert api(user).get("/api/v1/audit/export/").status_code == 403
        assert api(user).get("/api/v1/memberships/").status_code == 403


def test_local_list_switches_are_audited(operator, personas):
    station = make_station("AUD-LL", personas.site_a, ocpp_version="1.6", evses=1)
    local_lists.set_enabled(operator, station, True)
    entry = AuditEntry.objects.get(action="local_list.push")
    assert entry.summary == "turned on the local list of AUD-LL"
