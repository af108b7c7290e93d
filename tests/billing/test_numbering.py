"""Invoice numbers under concurrent generation: gap-free and unique per issuer, each session
billed once. Real threads with their own database connections (run on PostgreSQL in CI)."""

from datetime import date

import pytest

from billing import invoices
from billing.models import Invoice, InvoiceLine, SessionCost
from tests.support.billing_cast import billing_cast, customers_with_a_session, make_issuer
from tests.support.concurrency import in_threads

NOVEMBER = (date(2026, 11, 1), date(2026, 11, 30))
CUSTOMERS = 8


@pytest.mark.django_db(transaction=True)
def test_concurrent_generation_numbers_without_gaps_or_duplicates(personas):
    issuer, _ = billing_cast(personas)
    other_issuer = make_issuer(personas.org_a, legal_name="Properties A GmbH",
                               number_prefix="PA-")
    customers = customers_with_a_session(personas, CUSTOMERS)
    # Each customer's invoice generated and issued by its own thread, twice over (a double
    # click, two workers): the second finds nothing left to bill.
    jobs = [lambda c=c: invoices.generate(*NOVEMBER, customer=c, issue=True)
            for c in customers * 2]
    _, errors = in_threads(jobs)
    assert not errors, errors

    issued = Invoice.objects.filter(issuer=issuer).order_by("sequence")
    assert [i.sequence for i in issued] == list(range(1, CUSTOMERS + 1))
    assert len({i.number for i in issued}) == CUSTOMERS
    assert sorted(i.customer_id for i in issued) == sorted(c.pk for c in customers)
    assert InvoiceLine.objects.count() == CUSTOMERS  # every session billed once
    assert not SessionCost.objects.filter(invoice__isnull=True, state="final").exists()
    issuer.refresh_from_db()
    assert issuer.next_number == CUSTOMERS + 1
    other_issuer.refresh_from_db()
    assert other_issuer.next_number == 1  # numbering is per issuer


@pytest.mark.django_db(transaction=True)
def test_concurrent_issuing_of_drafts(personas):
    billing_cast(personas)
    drafts = [draft for customer in customers_with_a_session(personas, CUSTOMERS)
              for draft in invoices.generate(*NOVEMBER, customer=customer)]
    # Every draft issued by two threads at once: one wins, the other is told it is no draft.
    _, errors = in_threads([lambda d=d: invoices.issue(d) for d in drafts * 2])
    assert len(errors) == CUSTOMERS
    assert all(isinstance(e, invoices.InvoiceError) for e in errors)
    sequences = sorted(Invoice.objects.values_list("sequence", flat=True))
    assert sequences == list(range(1, CUSTOMERS + 1))
