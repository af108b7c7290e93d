"""The billing API as an integration uses it: token clients per persona, scoped reads, writes
for finance and operators only, files with the same totals as the pages."""

import csv
import io

import pytest
from django.utils import timezone

from billing.models import Invoice, Tariff
from tests.support.billing_cast import at, charge, fleet_sessions


@pytest.fixture
def november(personas, cast):
    fleet_sessions(personas)


def test_finance_creates_a_tariff_a_version_and_an_assignment(api, personas, cast):
    issuer, _ = cast
    client = api(personas.finance)
    response = client.post("/api/v1/billing/tariffs/", {
        "name": "Fleet night", "issuer": issuer.pk, "currency": "EUR",
        "first_version": {"valid_from": "2026-01-01T00:00:00Z", "price_kwh": "0.35",
                          "vat_rate": "19", "windows": [
                              {"label": "night", "weekdays": "0123456", "start": "22:00",
                               "end": "06:00", "price_kwh": "0.25"}]}}, format="json")
    assert response.status_code == 201, response.data
    tariff = Tariff.objects.get(name="Fleet night")
    later = timezone.now().replace(microsecond=0) + timezone.timedelta(days=1)
    response = client.post(f"/api/v1/billing/tariffs/{tariff.pk}/versions/", {
        "valid_from": later.isoformat(), "price_kwh": "0.38", "vat_rate": "19"}, format="json")
    assert response.status_code == 201 and response.data["number"] == 2
    response = client.post(f"/api/v1/billing/tariffs/{tariff.pk}/assignments/", {
        "site": personas.site_a.pk, "customer": personas.fleet_org.pk}, format="json")
    assert response.status_code == 201
    detail = client.get(f"/api/v1/billing/tariffs/{tariff.pk}/").data
    assert [v["number"] for v in detail["versions"]] == [2, 1]
    assert detail["versions"][1]["windows"][0]["label"] == "night"
    # Backdating is refused with a readable reason.
    response = client.post(f"/api/v1/billing/tariffs/{tariff.pk}/versions/", {
        "valid_from": "2026-02-01T00:00:00Z", "price_kwh": "0.1"}, format="json")
    assert response.status_code == 400 and "past" in str(response.data)


def test_writes_are_refused_to_others(api, personas, cast, november):
    for who in (personas.manager, personas.fleet, personas.outsider):
        client = api(who)
        assert client.post("/api/v1/billing/invoices/generate/", {"month": "2026-11"},
                           format="json").status_code == 403
        assert client.post("/api/v1/billing/exports/", {"month": "2026-11"},
                           format="json").status_code == 403
    assert not Invoice.objects.exists()


def test_generate_issue_and_files_agree(api, personas, cast, november):
    client = api(personas.finance)
    made = client.post("/api/v1/billing/invoices/generate/", {"month": "2026-11",
                                                              "issue": True}, format="json")
    assert made.status_code == 201
    invoice, = made.data
    assert (invoice["number"], invoice["gross_total"]) == ("INV-000001", "11.90")
    assert invoice["vat"] == [{"rate": "19.00", "base": "10.00", "amount": "1.90"}]
    pk = invoice["id"]
    xml = client.get(f"/api/v1/billing/invoices/{pk}/xml/")
    assert xml.status_code == 200 and b"<ram:GrandTotalAmount>11.90<" in xml.content
    rows = list(csv.DictReader(io.StringIO(client.get(
        f"/api/v1/billing/invoices/{pk}/csv/").content.decode("utf-8-sig"))))
    assert rows[-1]["gross_amount"] == "11.90"
    assert client.get(f"/api/v1/billing/invoices/{pk}/pdf/")["Content-Type"] == (
        "application/pdf")
    # The fleet sees its invoice; the property manager does not.
    assert api(personas.fleet).get(f"/api/v1/billing/invoices/{pk}/").status_code == 200
    assert api(personas.manager).get(f"/api/v1/billing/invoices/{pk}/").status_code == 404
    paid = client.post(f"/api/v1/billing/invoices/{pk}/pay/")
    assert paid.data["status"] == "paid"
    again = client.post(f"/api/v1/billing/invoices/{pk}/pay/")
    assert again.status_code == 400 and "Only an issued invoice" in str(again.data)
    note = client.post(f"/api/v1/billing/invoices/{pk}/credit/", {"rebill": False},
                       format="json")
    assert note.data["kind"] == "credit_note" and note.data["gross_total"] == "-11.90"


def test_session_costs_are_scoped(api, personas, cast, november):
    charge(personas.station_b, personas.token, start=at("2026-11-12T08:00"),
           readings=[(0, 0), (60, 10000)], stop=60)
    assert api(personas.finance).get("/api/v1/billing/session-costs/").data["count"] == 3
    mine = api(personas.manager).get("/api/v1/billing/session-costs/").data
    assert mine["count"] == 2 and {r["station"] for r in mine["results"]} == {"STATION-A"}
    fleet = api(personas.fleet).get("/api/v1/billing/session-costs/?state=final").data
    assert fleet["count"] == 2 and fleet["results"][0]["net"] == "5.00"
    assert api(personas.outsider).get("/api/v1/billing/session-costs/").data["count"] == 1


def test_revenue_for_a_property_manager(api, personas, cast, november):
    data = api(personas.manager).get("/api/v1/billing/revenue/?month=2026-11").data
    assert [(r["site_name"], r["sessions"], r["net"]) for r in data["rows"]] == [
        ("Site A", 2, "10.00")]
    assert api(personas.outsider).get("/api/v1/billing/revenue/?month=2026-11").data[
        "rows"] == []
    bad = api(personas.manager).get("/api/v1/billing/revenue/?month=2026-13")
    assert bad.status_code == 400


def test_export_job_progress_and_download(api, personas, cast, november, settings, tmp_path,
                                          django_capture_on_commit_callbacks, eager):
    settings.MEDIA_ROOT = tmp_path
    client = api(personas.finance)
    client.post("/api/v1/billing/invoices/generate/", {"month": "2026-11", "issue": True},
                format="json")
    issued = Invoice.objects.get().issue_date  # exports take what was issued in the month
    with django_capture_on_commit_callbacks(execute=True):
        job = client.post("/api/v1/billing/exports/", {"month": f"{issued:%Y-%m}"},
                          format="json").data
    state = client.get(f"/api/v1/billing/exports/{job['id']}/").data
    assert (state["status"], state["done"], state["total"], state["percent"]) == (
        "done", 3, 3, 100)
    assert client.get(f"/api/v1/billing/exports/{job['id']}/download/").status_code == 200


def test_api_schema_lists_billing(api, personas):
    schema = api(personas.finance).get("/api/schema/").content.decode()
    for path in ("/api/v1/billing/tariffs/", "/api/v1/billing/invoices/{id}/pdf/",
                 "/api/v1/billing/revenue/"):
        assert path in schema


def test_two_windows_of_one_label_are_refused_readably(api, personas, cast):
    issuer, _ = cast
    night = {"weekdays": "01234", "start": "22:00", "end": "06:00"}
    response = api(personas.finance).post("/api/v1/billing/tariffs/", {
        "name": "Nights", "issuer": issuer.pk, "currency": "EUR",
        "first_version": {"valid_from": "2026-01-01T00:00:00Z", "price_kwh": "0.40",
                          "vat_rate": "19", "windows": [
                              {"label": "night", **night, "price_kwh": "0.20"},
                              {"label": "night", **night, "weekdays": "56",
                               "price_kwh": "0.10"}]}}, format="json")
    assert response.status_code == 400
    assert "Two time windows are called night" in response.data["detail"][0]
    assert not Tariff.objects.filter(name="Nights").exists()


def test_a_meter_rollover_is_billed_with_the_energy_a_person_corrects(api, personas, cast):
    # The register rolls over at 100,000 kWh: 99,990 → 99,999 → 1.5 kWh. Unpriceable as it is;
    # the real energy is 10 + 1.5 = 11.5 kWh: 11.5 x 0.40 = 4.60 net, 0.87 VAT, 5.47 total.
    from accounts.models import AuditEntry

    tx = charge(personas.station_a, personas.fleet_token, start=at("2026-11-02T10:00"),
                readings=[(0, 99_990_000), (30, 99_999_000), (60, 1_500)], stop=60)
    cost = tx.cost
    assert cost.state == "review" and "backwards" in cost.note
    client = api(personas.finance)
    accepted = client.post(f"/api/v1/billing/session-costs/{cost.pk}/accept/")
    assert accepted.status_code == 400 and "enter the corrected energy" in str(accepted.data)
    missing_reason = client.post(f"/api/v1/billing/session-costs/{cost.pk}/correct/",
                                 {"energy_wh": "11500"}, format="json")
    assert missing_reason.status_code == 400
    corrected = client.post(f"/api/v1/billing/session-costs/{cost.pk}/correct/",
                            {"energy_wh": "11500", "reason": "meter rollover at 100,000 kWh"},
                            format="json")
    assert corrected.status_code == 200, corrected.data
    assert (corrected.data["state"], corrected.data["net"], corrected.data["gross"]) == (
        "final", "4.60", "5.47")
    assert corrected.data["corrected_energy_wh"] == "11500.000"
    assert corrected.data["provisional"] is False
    entry = AuditEntry.objects.get(action="session_cost.corrected")
    assert entry.actor == personas.finance and entry.target == f"session:{tx.pk}"
    assert entry.details["reason"] == "meter rollover at 100,000 kWh"
    made = client.post("/api/v1/billing/invoices/generate/", {"month": "2026-11"},
                       format="json")
    assert [line["net_amount"] for line in made.data[0]["lines"]] == ["4.60"]


def test_finance_actions_through_the_api_are_audited(api, personas, cast, november):
    from accounts.models import AuditEntry

    issuer, _ = cast
    client = api(personas.finance)
    created = client.post("/api/v1/billing/tariffs/", {
        "name": "Audited", "issuer": issuer.pk, "currency": "EUR",
        "first_version": {"valid_from": "2026-01-01T00:00:00Z", "price_kwh": "0.35",
                          "vat_rate": "19"}}, format="json")
    client.post(f"/api/v1/billing/tariffs/{created.data['id']}/assignments/",
                {"station": personas.station_b.pk}, format="json")
    made = client.post("/api/v1/billing/invoices/generate/",
                       {"month": "2026-11", "customer": personas.fleet_org.pk}, format="json")
    invoice = made.data[0]["id"]
    client.post(f"/api/v1/billing/invoices/{invoice}/issue/")
    client.post(f"/api/v1/billing/invoices/{invoice}/pay/")
    logged = list(AuditEntry.objects.filter(actor=personas.finance).order_by("at", "id")
                  .values_list("action", "target"))
    assert logged == [
        ("tariff.created", f"tariff:{created.data['id']}"),
        ("tariff.version", f"tariff:{created.data['id']}"),
        ("tariff.assigned", f"tariff:{created.data['id']}"),
        ("invoice.generated", f"invoice:{invoice}"),
        ("invoice.issued", f"invoice:{invoice}"),
        ("invoice.paid", f"invoice:{invoice}")]
