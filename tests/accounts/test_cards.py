"""The RFID card lifecycle: issuing, blocking and expiring through the API, CSV import (5,000
rows with bad ones, re-imported) and export, each action in the audit log. What a charger is
told per card state is in the authorization block's test,
tests/gateway/blocks/test_authorization.py."""

import csv
import io
import time
from datetime import datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from accounts import cards
from accounts.models import AuditEntry, CardImport, IdToken
from tests.support.personas import make_transaction

TOKENS = "/api/v1/id-tokens/"
IMPORTS = "/api/v1/card-imports/"


# --- single cards through the API -------------------------------------------------------------

@pytest.mark.django_db
def test_fleet_admin_issues_blocks_and_expires_their_cards(api, fleet, personas, eager):
    client = api(fleet)
    created = client.post(TOKENS, {"value": "FLEET-NEW", "token_type": "ISO15693",
                                   "holder": "Driver One", "group": "VAN-7",
                                   "organization": personas.fleet_org.pk}, format="json")
    assert created.status_code == 201, created.content
    card = IdToken.objects.get(value="FLEET-NEW")
    assert (card.token_type, card.holder, card.group) == ("ISO15693", "Driver One", "VAN-7")

    blocked = client.post(f"{TOKENS}bulk/", {"action": "block",
                                             "ids": [card.pk, personas.token.pk]}, format="json")
    # The operator's card is not the fleet admin's to block: only theirs changed.
    assert blocked.json() == {"changed": 1}
    assert IdToken.objects.get(pk=personas.token.pk).status == IdToken.Status.ACCEPTED
    card.refresh_from_db()
    assert card.status == IdToken.Status.BLOCKED
    assert client.post(f"{TOKENS}bulk/", {"action": "unblock", "ids": [card.pk]},
                       format="json").json() == {"changed": 1}
    assert client.post(f"{TOKENS}bulk/", {"action": "expire", "ids": [card.pk]},
                       format="json").json() == {"changed": 1}
    card.refresh_from_db()
    assert card.effective_status() == IdToken.Status.EXPIRED

    log = list(AuditEntry.objects.order_by("id").values_list("actor_name", "action", "target"))
    assert log == [("fleet", a, f"card:{card.pk}") for a in
                   ("card.issued", "card.blocked", "card.unblocked", "card.expired")]


@pytest.mark.django_db
def test_card_limited_to_sites_and_what_each_reader_sees_of_them(api, operator, fleet,
                                                                personas, eager):
    created = api(operator).post(TOKENS, {
        "value": "DEPOT-ONLY", "organization": personas.fleet_org.pk,
        "allowed_sites": [personas.site_a.pk]}, format="json")
    assert created.status_code == 201, created.content
    assert created.json()["allowed_sites"] == [personas.site_a.pk]
    # The fleet admin sees the card but not another tenant's site ids...
    mine = api(fleet).get(f"{TOKENS}{created.json()['id']}/").json()
    assert mine["allowed_sites"] == []
    # ...and changing the holder keeps the limit they cannot see.
    changed = api(fleet).patch(f"{TOKENS}{mine['id']}/", {"holder": "Depot van"}, format="json")
    assert changed.status_code == 200, changed.content
    card = IdToken.objects.get(value="DEPOT-ONLY")
    assert list(card.allowed_sites.all()) == [personas.site_a] and card.holder == "Depot van"
    entry = AuditEntry.objects.filter(action="card.changed").get()
    assert entry.details == {"changed": {"holder": ["", "Depot van"]}}
    # Limiting a card to a site they cannot see is refused.
    refused = api(fleet).patch(f"{TOKENS}{mine['id']}/",
                               {"allowed_sites": [personas.site_b.pk]}, format="json")
    assert refused.status_code == 400


@pytest.mark.django_db
def test_card_numbers_are_checked(api, operator, eager):
    for value, reason in [("", "blank"), ("has space", "printable"), ("X" * 37, "36")]:
        response = api(operator).post(TOKENS, {"value": value}, format="json")
        assert response.status_code == 400, value
        assert reason in str(response.json()["value"]), response.json()
    api(operator).post(TOKENS, {"value": "ONCE"}, format="json")
    again = api(operator).post(TOKENS, {"value": "ONCE"}, format="json")
    assert again.status_code == 400 and "already" in str(again.json()["value"])
    assert AuditEntry.objects.filter(action="card.issued").count() == 1


# --- import and export --------------------------------------------------------------------------

def _bulk_file(count: int) -> tuple[bytes, dict[int, str]]:
    """count card rows, one in fifty of them wrong in some way; returns the bytes and the
    line numbers expected to be rejected with a word of their reason."""
    lines = ["card_number,token_type,holder,group,expires_at,status"]
    bad: dict[int, str] = {}
    for n in range(count):
        line = n + 2
        row = [f"BULK-{n:05d}", "ISO14443", f"Driver {n}", f"G{n % 7}", "2030-12-31", "Accepted"]
        match n % 50:
            case 10:
                row[1], bad[line] = "Magstripe", "Token type"
            case 20:
                row[4], bad[line] = "next tuesday", "date"
            case 30:
                row[0], bad[line] = "TOO-LONG-" + "X" * 40, "36"
            case 40:
                row[0], bad[line] = "BULK-00000", "Repeats"
        lines.append(",".join(row))
    return ("\n".join(lines) + "\n").encode(), bad


@pytest.mark.django_db(transaction=True)
def test_import_of_5000_cards_with_bad_rows_and_idempotent_reimport(api, fleet, personas,
                                                                   eager):
    content, bad = _bulk_file(5000)
    IdToken.objects.create(value="BULK-04999", organization=personas.org_b)  # someone else's
    bad[5001] = "another organization"
    upload = io.BytesIO(content)
    upload.name = "fleet-cards.csv"
    started = time.monotonic()
    response = api(fleet).post(f"{TOKENS}import/", {"file": upload,
                                                    "organization": personas.fleet_org.pk})
    elapsed = time.monotonic() - started
    assert response.status_code == 202, response.content
    job = CardImport.objects.get(pk=response.json()["id"])
    print(f"\n5,000-card import: {elapsed:.2f} s")
    assert (job.state, job.total, job.processed) == ("done", 5000, 5000)
    assert (job.created, job.updated, job.unchanged, job.rejected) == (
        5000 - len(bad), 0, 0, len(bad))
    assert IdToken.objects.filter(organization=personas.fleet_org,
                                  value__startswith="BULK-").count() == 5000 - len(bad)
    card = IdToken.objects.get(value="BULK-00001")
    assert (card.holder, card.group, card.expires_at.date().isoformat()) == (
        "Driver 1", "G1", "2030-12-31")

    report = api(fleet).get(f"{IMPORTS}{job.pk}/rejections/")
    assert report.status_code == 200 and report["Content-Type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(report.content.decode())))
    assert {int(row["line"]) for row in rows} == set(bad)
    for row in rows:
        assert bad[int(row["line"])] in row["reason"], row

    progress = api(fleet).get(f"{IMPORTS}{job.pk}/").json()
    assert progress["percent"] == 100 and progress["rejected"] == len(bad)
    entry = AuditEntry.objects.get(action="cards.imported")
    assert entry.actor_name == "fleet" and entry.details["created"] == 5000 - len(bad)

    # The same file again: nothing changes. One changed line: one update.
    upload = io.BytesIO(content.replace(b"BULK-00003,ISO14443,Driver 3",
                                        b"BULK-00003,ISO14443,Driver Three"))
    upload.name = "fleet-cards.csv"
    again = api(fleet).post(f"{TOKENS}import/", {"file": upload,
                                                 "organization": personas.fleet_org.pk})
    job = CardImport.objects.get(pk=again.json()["id"])
    # A change to an existing card is listed first, and applies once confirmed.
    assert job.state == "review" and job.changes == [
        {"line": 5, "value": "BULK-00003", "changed": {"holder": ["Driver 3", "Driver Three"]},
         "widens": False}]
    assert IdToken.objects.get(value="BULK-00003").holder == "Driver 3"
    assert api(fleet).post(f"{IMPORTS}{job.pk}/confirm/").json()["state"] == "done"
    job.refresh_from_db()
    assert (job.created, job.updated, job.unchanged, job.rejected) == (
        0, 1, 5000 - len(bad) - 1, len(bad))
    assert IdToken.objects.get(value="BULK-00003").holder == "Driver Three"
    # The other organization's card was not touched.
    assert IdToken.objects.get(value="BULK-04999").organization == personas.org_b


@pytest.mark.django_db
def test_import_refuses_a_file_it_cannot_read(api, fleet, personas, eager):
    for content, reason in [(b"\xff\xfe\x00garbage", "UTF-8"),
                            (b"holder,group\nA,B\n", "card number")]:
        upload = io.BytesIO(content)
        upload.name = "x.csv"
        response = api(fleet).post(f"{TOKENS}import/", {"file": upload,
                                                        "organization": personas.fleet_org.pk})
        assert response.status_code == 400 and reason in str(response.json()), response.content
    upload = io.BytesIO(b"value\nA\n")
    upload.name = "x.csv"
    other = api(fleet).post(f"{TOKENS}import/", {"file": upload,
                                                 "organization": personas.org_b.pk})
    assert other.status_code == 400  # not their organization
    assert not CardImport.objects.exists()


@pytest.mark.django_db
def test_export_is_scoped_audited_and_safe_in_a_spreadsheet(api, fleet, personas, eager,
                                                            django_capture_on_commit_callbacks):
    IdToken.objects.create(value="FORMULA", holder="=HYPERLINK(\"x\")",
                           organization=personas.fleet_org)
    response = api(fleet).get(f"{TOKENS}export/")
    assert response.status_code == 200
    text = b"".join(response.streaming_content).decode()
    rows = list(csv.DictReader(io.StringIO(text)))
    assert {row["value"] for row in rows} == {"TOKEN-FLEET", "FORMULA"}
    assert next(r for r in rows if r["value"] == "FORMULA")["holder"].startswith("'=")
    entry = AuditEntry.objects.get(action="export")
    assert (entry.actor_name, entry.summary) == ("fleet", "exported 2 cards")

    # What was exported imports back unchanged.
    with django_capture_on_commit_callbacks(execute=True):
        job = cards.import_start(fleet, personas.fleet_org, "back.csv", text.encode())
    job.refresh_from_db()
    assert (job.created, job.updated, job.unchanged, job.rejected) == (0, 0, 2, 0)


@pytest.mark.django_db
def test_finance_and_managers_cannot_write_cards(api, finance, manager, personas, eager):
    for user in (finance, manager):
        client = api(user)
        assert client.post(TOKENS, {"value": "NOPE"}, format="json").status_code == 403
        assert client.post(f"{TOKENS}bulk/", {"action": "block",
                                              "ids": [personas.fleet_token.pk]},
                           format="json").status_code == 403
    assert IdToken.objects.get(pk=personas.fleet_token.pk).status == "Accepted"


@pytest.mark.django_db
def test_a_card_that_charged_is_kept(api, client, fleet, personas, eager):
    make_transaction(personas.station_a, personas.fleet_token)
    response = api(fleet).delete(f"{TOKENS}{personas.fleet_token.pk}/")
    assert response.status_code == 409 and "block it instead" in response.json()["detail"]
    client.force_login(fleet)
    page = client.post(f"/cards/{personas.fleet_token.pk}/delete/", follow=True)
    assert "block it instead" in page.content.decode()
    assert IdToken.objects.filter(pk=personas.fleet_token.pk).exists()
    assert not AuditEntry.objects.filter(action="card.deleted").exists()


@pytest.mark.django_db
def test_an_import_stopped_by_a_bug_says_so_without_a_stack_trace(
        client, fleet, personas, eager, monkeypatch, django_capture_on_commit_callbacks):
    def broken(*args):
        raise RuntimeError("the database went away")

    monkeypatch.setattr(cards, "_import_batch", broken)
    client.force_login(fleet)
    upload = io.BytesIO(b"value\nOK-1\n")
    upload.name = "x.csv"
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post("/cards/import/", {"file": upload,
                                                  "organization": personas.fleet_org.pk})
    job = CardImport.objects.get()
    assert response.status_code == 302 and job.state == "failed"
    page = client.get(f"/cards/import/{job.pk}/").content.decode()
    assert "Stopped by an internal error" in page and "database went away" not in page


# --- imports never widen access without saying so ------------------------------------------------

def _import(client, fleet_org, content: bytes) -> CardImport:
    upload = io.BytesIO(content)
    upload.name = "update.csv"
    response = client.post(f"{TOKENS}import/", {"file": upload, "organization": fleet_org.pk})
    assert response.status_code == 202, response.content
    return CardImport.objects.get(pk=response.json()["id"])


def _blocked_card(personas) -> IdToken:
    return IdToken.objects.create(value="LOST-CARD", status=IdToken.Status.BLOCKED,
                                  holder="Driver Lost", expires_at="2027-06-30T00:00:00Z",
                                  organization=personas.fleet_org)


@pytest.mark.django_db(transaction=True)
def test_a_row_with_only_the_card_number_leaves_an_existing_card_as_it_is(api, fleet, personas,
                                                                          eager):
    card = _blocked_card(personas)
    job = _import(api(fleet), personas.fleet_org, b"value,holder,expires_at\nLOST-CARD,,\n")
    assert (job.state, job.unchanged, job.updated) == ("done", 1, 0)
    card.refresh_from_db()
    assert (card.status, card.holder, card.expires_at.year) == ("Blocked", "Driver Lost", 2027)
    assert not AuditEntry.objects.filter(target=f"card:{card.pk}").exists()


@pytest.mark.django_db(transaction=True)
def test_changes_to_existing_cards_are_listed_and_apply_once_confirmed(client, fleet,
                                                                       personas, eager):
    card = _blocked_card(personas)
    client.force_login(fleet)
    upload = io.BytesIO(b"value,status,holder\nLOST-CARD,Accepted,\nNEW-CARD,,Driver New\n")
    upload.name = "update.csv"
    page = client.post("/cards/import/", {"file": upload, "organization": personas.fleet_org.pk},
                       follow=True).content.decode()
    job = CardImport.objects.get()
    assert job.state == "review" and job.changes == [
        {"line": 2, "value": "LOST-CARD", "changed": {"status": ["Blocked", "Accepted"]},
         "widens": True}]
    assert "widens access:</strong> status: Blocked → Accepted" in page
    # Nothing is imported before the confirmation, the new card neither.
    assert IdToken.objects.get(pk=card.pk).status == "Blocked"
    assert not IdToken.objects.filter(value="NEW-CARD").exists()

    client.post(f"/cards/import/{job.pk}/confirm/")
    job.refresh_from_db()
    card.refresh_from_db()
    assert (job.state, job.created, job.updated) == ("done", 1, 1)
    assert (card.status, card.holder) == ("Accepted", "Driver Lost")  # the empty cell kept it
    entry = AuditEntry.objects.get(target=f"card:{card.pk}")
    assert (entry.action, entry.actor_name) == ("card.unblocked", "fleet")
    assert entry.details == {"changed": {"status": ["Blocked", "Accepted"]}, "import": job.pk}


@pytest.mark.django_db(transaction=True)
def test_a_card_changed_after_the_listing_is_not_overwritten_and_an_import_can_be_discarded(
        api, fleet, personas, eager):
    card = _blocked_card(personas)
    client = api(fleet)
    job = _import(client, personas.fleet_org, b"value,holder\nLOST-CARD,Driver Found\n")
    assert client.get(f"{IMPORTS}{job.pk}/").json()["changes"][0]["changed"] == {
        "holder": ["Driver Lost", "Driver Found"]}
    IdToken.objects.filter(pk=card.pk).update(holder="Driver Elsewhere")  # meanwhile
    confirmed = client.post(f"{IMPORTS}{job.pk}/confirm/").json()
    assert (confirmed["state"], confirmed["updated"], confirmed["rejected"]) == ("done", 0, 1)
    assert IdToken.objects.get(pk=card.pk).holder == "Driver Elsewhere"
    assert "changed since" in CardImport.objects.get(pk=job.pk).rejections[0]["reason"]
    # Confirming twice, or by someone who does not manage the cards, does nothing.
    assert client.post(f"{IMPORTS}{job.pk}/confirm/").status_code == 409

    job = _import(client, personas.fleet_org, b"value,status\nLOST-CARD,Accepted\n")
    assert api(personas.manager).post(f"{IMPORTS}{job.pk}/confirm/").status_code == 404
    assert client.post(f"{IMPORTS}{job.pk}/discard/").json()["state"] == "discarded"
    assert IdToken.objects.get(pk=card.pk).status == "Blocked"


# Cells of an import row: empty, or text a person (or a broken export) may write.
cell_text = st.one_of(st.just(""), st.text(max_size=40),
                      st.sampled_from(["Accepted", "blocked", "EXPIRED", "Invalid", "KeyCode",
                                       "2030-01-31", "2030-01-31T10:00:00+02:00", "  ", "=1+1"]))


@given(status=st.sampled_from(IdToken.Status.values), holder=st.text(max_size=20),
       group=st.text(max_size=10), expires=st.sampled_from([None, "2029-12-31T23:59:59+00:00"]),
       cells=st.fixed_dictionaries({name: cell_text for name in cards.ROW_FIELDS
                                    if name != "allowed_sites"}))
def test_an_import_row_changes_exactly_the_fields_its_cells_give(status, holder, group, expires,
                                                                  cells):
    """Whatever a row holds, reading it either refuses it readably (CardError) or changes only
    fields whose cells are not empty, each to what its cell says; and a change that unblocks
    or lengthens a card is always marked as widening access."""
    existing = IdToken(value="CARD", status=status, holder=holder.strip(), group=group.strip(),
                       expires_at=datetime.fromisoformat(expires) if expires else None)
    header = ["value", *cells]
    try:
        row = cards.row_read(header, ["CARD", *cells.values()], sites={})
    except cards.CardError as error:
        assert str(error)
        return
    changed = cards.row_changes(existing, row, visible_sites=set())
    assert set(changed) <= {name for name, cell in cells.items() if cell.strip()}
    for name, (before, after) in changed.items():
        assert before != after
        if name in ("holder", "group"):
            assert after == cells[name].strip()
    unblocks = "status" in changed and changed["status"][1] == "Accepted"
    lengthens = "expires_at" in changed and changed["expires_at"][0] is not None and (
        changed["expires_at"][1] is None or changed["expires_at"][1] > changed["expires_at"][0])
    assert cards.widens(changed) == (unblocks or lengthens)


@given(st.text(max_size=40))
def test_an_expiry_cell_is_a_moment_with_its_zone_or_a_readable_refusal(text):
    try:
        moment = cards.parse_expiry(text)
    except cards.CardError as error:
        assert "is not a date" in str(error)
        return
    assert moment is None if not text.strip() else moment.tzinfo is not None


@given(st.lists(st.sampled_from([*cards.COLUMNS, "card_number", "note", ""]), min_size=1,
                max_size=8),
       st.lists(st.text(max_size=12), max_size=10))
def test_any_line_under_any_header_is_read_or_refused_readably(header, row):
    """Columns in any order, unknown ones, more cells than columns: a CardError that says why,
    or a card whose given fields are exactly its non-empty known cells."""
    try:
        read = cards.row_read(header, row, sites={})
    except cards.CardError as error:
        assert str(error)
        return
    cells = dict(zip(header, (cell.strip() for cell in row), strict=False))
    assert read.given == {name for name in cards.ROW_FIELDS if cells.get(name)}
    assert read.data.value == cells["value"]
