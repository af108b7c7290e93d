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
