"""Two people (or two workers) changing one invoice at the same moment: every change of state
decides on the locked row, and the database itself refuses to change an issued invoice or add
lines to it. Real parallel transactions: threads with their own connections, and two HTTP
requests at once to two server processes (PostgreSQL is where they truly overlap; SQLite's
writers take turns)."""

import json
import urllib.error
import urllib.request
from datetime import date, timedelta
from decimal import Decimal as D

import pytest
from django.core.exceptions import ValidationError
from django.db import DatabaseError, models, transaction
from django.utils import timezone
from rest_framework.authtoken.models import Token

from billing import invoices
from billing.models import Invoice, InvoiceLine, Issuer, SessionCost
from tests.support.billing_cast import billing_cast, customers_with_a_session
from tests.support.concurrency import in_threads
from tests.support.servers import procfile_webs

NOVEMBER = (date(2026, 11, 1), date(2026, 11, 30))
TRIES = 40


def _draft(customer) -> Invoice:
    draft, = invoices.generate(*NOVEMBER, customer=customer)
    return draft


def _numbers_have_no_gaps(issuer: Issuer) -> None:
    """Every number handed out belongs to a document that exists."""
    issuer.refresh_from_db()
    sequences = sorted(Invoice.objects.filter(issuer=issuer).exclude(sequence=None)
                       .values_list("sequence", flat=True))
    assert sequences == list(range(1, issuer.next_number))


def _outcome(draft: Invoice) -> str:
    """What became of a draft both issued and discarded at once: exactly one of the two."""
    found = Invoice.objects.filter(pk=draft.pk).first()
    costs = SessionCost.objects.filter(transaction__invoice_lines__invoice_id=draft.pk)
    if found is None:
        assert not InvoiceLine.objects.filter(invoice_id=draft.pk).exists()
        assert not SessionCost.objects.filter(invoice_id=draft.pk).exists()
        return "discarded"
    assert found.status == Invoice.Status.ISSUED and found.number and found.lines.exists()
    assert costs.count() == found.lines.count()
    assert all(cost.invoice_id == found.pk for cost in costs)
    # Back to billable for the next try, properly: a credit note with its own number.
    invoices.credit(found, rebill=True, reason="next try")
    return "issued"


@pytest.mark.django_db(transaction=True)
def test_issuing_and_discarding_at_once_in_threads(personas):
    issuer, _ = billing_cast(personas)
    customer, = customers_with_a_session(personas, 1)
    outcomes = []
    for _ in range(TRIES):
        draft = _draft(customer)
        _, errors = in_threads([lambda d=draft: invoices.issue(d),
                                lambda d=draft: invoices.discard(d)])
        assert len(errors) == 1 and isinstance(errors[0], invoices.InvoiceError), errors
        outcomes.append(_outcome(draft))
    _numbers_have_no_gaps(issuer)
    # One session, never billed twice: on no open invoice, or on the last issued one only.
    assert SessionCost.objects.filter(invoice__status=Invoice.Status.ISSUED).count() <= 1
    assert set(outcomes) <= {"issued", "discarded"}


@pytest.mark.django_db(transaction=True)
def test_paying_and_crediting_at_once_in_threads(personas):
    issuer, _ = billing_cast(personas)
    customer, = customers_with_a_session(personas, 1)
    for _ in range(TRIES):
        invoice, = invoices.generate(*NOVEMBER, customer=customer, issue=True)
        _, errors = in_threads([
            lambda i=invoice: invoices.mark_paid(i),
            lambda i=invoice: invoices.credit(i, rebill=True, reason="race")])
        invoice.refresh_from_db()
        # Credited last either way: paid then credited (a refund), or credited and the
        # payment refused. Never paid with a credit note against it.
        assert invoice.status == Invoice.Status.VOID
        assert invoice.credit_notes.count() == 1
        assert all(isinstance(e, invoices.InvoiceError) for e in errors), errors
        assert (invoice.paid_at is not None) == (not errors)
    _numbers_have_no_gaps(issuer)


def _post(port: int, path: str, token: str) -> int:
    request = urllib.request.Request(f"http://127.0.0.1:{port}{path}", data=b"{}",
                                     method="POST", headers={
                                         "Authorization": f"Token {token}",
                                         "Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status
    except urllib.error.HTTPError as error:
        assert "detail" in json.loads(error.read()), "a refusal says why"
        return error.code


@pytest.mark.django_db(transaction=True)
def test_issuing_and_discarding_at_once_over_http(personas):
    issuer, _ = billing_cast(personas)
    customer, = customers_with_a_session(personas, 1)
    token = Token.objects.create(user=personas.finance).key
    with procfile_webs(2) as [(port_a, _), (port_b, _)]:
        for _ in range(TRIES):
            draft = _draft(customer)
            issue, discard = f"/api/v1/billing/invoices/{draft.pk}/issue/", \
                f"/api/v1/billing/invoices/{draft.pk}/discard/"
            codes, errors = in_threads([lambda p=issue: _post(port_a, p, token),
                                        lambda p=discard: _post(port_b, p, token)])
            assert not errors, errors
            statuses = dict(zip(("issue", "discard"), codes, strict=True))
            outcome = _outcome(draft)
            winner = {"issued": "issue", "discarded": "discard"}[outcome]
            assert statuses[winner] in (200, 204), statuses
            # The loser is told why: no longer a draft (400), or already gone (404).
            assert statuses[({"issue", "discard"} - {winner}).pop()] in (400, 404), statuses
    _numbers_have_no_gaps(issuer)


@pytest.mark.django_db
def test_the_database_refuses_changes_to_issued_invoices_on_every_path(personas, cast):
    customer, = customers_with_a_session(personas, 1)
    invoice, = invoices.generate(*NOVEMBER, customer=customer, issue=True)
    line = invoice.lines.get()
    # Past the model's guards (its plain base manager): the database refuses.
    for change in ({"net_total": D("1.00")}, {"number": "INV-999999"},
                   {"status": Invoice.Status.DRAFT}, {"issue_date": date(2020, 1, 1)}):
        with pytest.raises(DatabaseError), transaction.atomic():
            Invoice._base_manager.filter(pk=invoice.pk).update(**change)
    with pytest.raises(DatabaseError), transaction.atomic():
        InvoiceLine._base_manager.filter(pk=line.pk).update(net_amount=D("0.01"))
    with pytest.raises(DatabaseError), transaction.atomic():
        InvoiceLine._base_manager.bulk_create([InvoiceLine(
            invoice=invoice, position=2, description="added later", started_at=line.started_at,
            energy_wh=D("1"), net_amount=D("100.00"), vat_rate=D("19"))])
    # The model's own guards say it readably first.
    with pytest.raises(ValidationError):
        Invoice.objects.filter(pk=invoice.pk).update(net_total=D("1.00"))
    with pytest.raises(ValidationError, match="cannot be added to an issued invoice"):
        InvoiceLine.objects.bulk_create([InvoiceLine(
            invoice=invoice, position=2, description="added later", started_at=line.started_at,
            energy_wh=D("1"), net_amount=D("100.00"), vat_rate=D("19"))])
    # Only the way it ends may change.
    Invoice._base_manager.filter(pk=invoice.pk).update(status=Invoice.Status.PAID)
    invoice.refresh_from_db()
    assert invoice.status == Invoice.Status.PAID and invoice.lines.count() == 1


@pytest.mark.django_db
def test_every_column_of_an_issued_invoice_is_guarded(personas, cast):
    """A column added to Invoice is frozen too (PostgreSQL compares whole rows; SQLite's
    trigger lists the columns, so a new one needs a migration recreating it)."""
    customer, = customers_with_a_session(personas, 1)
    invoice, = invoices.generate(*NOVEMBER, customer=customer, issue=True)
    for field in Invoice._meta.concrete_fields:
        if field.attname in Invoice.MUTABLE_AFTER_ISSUE or field.primary_key:
            continue
        value = {"issuer_id": Issuer.objects.create(organization=personas.operator_org,
                                                    legal_name="Other").pk,
                 "customer_id": personas.org_a.pk, "corrects_id": invoice.pk,
                 "kind": Invoice.Kind.CREDIT_NOTE}.get(field.attname)
        if value is None:
            value = _another(field, getattr(invoice, field.attname))
        with pytest.raises(DatabaseError), transaction.atomic():
            Invoice._base_manager.filter(pk=invoice.pk).update(**{field.attname: value})


def _another(field: models.Field, current):
    """A value of the field's type other than `current`."""
    if isinstance(field, models.DateTimeField):
        return (current or timezone.now()) + timedelta(days=1)
    if isinstance(field, models.DateField):
        return (current or date(2026, 1, 1)) + timedelta(days=1)
    if isinstance(field, models.DecimalField):
        return (current or D("0")) + D("1")
    if isinstance(field, models.JSONField):
        return {"changed": True}
    if isinstance(field, models.IntegerField):
        return (current or 0) + 1000
    return ("Y" if current.startswith("X") else "X") + current[1:]
