"""Invoices from priced sessions: generation per customer and period, issuing with gap-free
numbers, payment, and correction by credit note.

Numbers: a draft has none. Issuing takes the issuer's counter row under SELECT ... FOR UPDATE
in the same database transaction that stores the issued invoice, so two issuers in parallel
never get the same number, and a failure rolls the counter back with the invoice: no gaps.
"""

import calendar
from collections import defaultdict
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction as db
from django.db.models import Count, QuerySet, Sum
from django.utils import timezone

from accounts import audit
from accounts.models import AuditEntry, Organization
from billing import einvoice
from billing.models import (
    ZERO,
    CustomerAccount,
    Invoice,
    InvoiceLine,
    Issuer,
    SessionCost,
)
from billing.vat import vat_groups

Action = AuditEntry.Action


class InvoiceError(ValueError):
    """A request the invoice's state does not allow, said readably."""


def _audit(user: AbstractBaseUser | None, action: str, invoice: Invoice, summary: str,
           **details) -> None:
    """Finance's actions in the audit log, in the transaction that makes them (no entry for
    what rolled back). A None user is the monthly background run."""
    audit.record(user, action, summary, target=f"invoice:{invoice.pk}", details={
        "number": invoice.number, "customer": invoice.customer_id,
        "gross_total": str(invoice.gross_total), **details})


def previous_month(today: date) -> tuple[date, date]:
    first = today.replace(day=1)
    last_of_previous = first - timedelta(days=1)
    return last_of_previous.replace(day=1), last_of_previous


def month(year: int, number: int) -> tuple[date, date]:
    return date(year, number, 1), date(year, number, calendar.monthrange(year, number)[1])


def period_end_instant(issuer: Issuer, end: date) -> datetime:
    """The end of a period's last day in the issuer's time zone (exclusive)."""
    return datetime.combine(end + timedelta(days=1), time(0), tzinfo=ZoneInfo(issuer.time_zone))


def _total(invoice: Invoice) -> None:
    groups = vat_groups(invoice)
    invoice.net_total = sum((g.base for g in groups), ZERO)
    invoice.vat_total = sum((g.amount for g in groups), ZERO)
    invoice.gross_total = invoice.net_total + invoice.vat_total


def billable(issuer: Issuer, until: datetime) -> QuerySet[SessionCost]:
    """Priced sessions of this issuer's tariffs that ended before `until` and are on no
    invoice yet (late ones — resolved after review, stopped offline — included)."""
    return (SessionCost.objects
            .filter(state__in=SessionCost.BILLABLE, invoice__isnull=True, customer__isnull=False,
                    tariff_version__tariff__issuer=issuer, transaction__stopped_at__lt=until)
            .select_related("transaction__station__site", "transaction__id_token")
            .order_by("transaction__started_at", "pk"))


@dataclass(frozen=True, slots=True)
class Pending:
    """What generating a period would put on one customer's invoice from one issuer."""

    issuer: str
    customer: str
    sessions: int
    net: Decimal


def pending(period_start: date, period_end: date,
            customer: Organization | None = None) -> list[Pending]:
    """What `generate` would bill, without writing anything (shown before issuing at once)."""
    rows = []
    for issuer in Issuer.objects.all():
        costs = billable(issuer, period_end_instant(issuer, period_end))
        if customer is not None:
            costs = costs.filter(customer=customer)
        rows += [Pending(issuer.legal_name, row["customer__name"], row["sessions"], row["net"])
                 for row in costs.order_by().values("customer__name")
                 .annotate(sessions=Count("pk"), net=Sum("net")).order_by("customer__name")]
    return rows


def _account(customer: Organization, issuer: Issuer) -> CustomerAccount:
    account = CustomerAccount.objects.filter(organization=customer).first()
    if account is None:
        # Billing details nobody entered yet: the name, and the issuer's country, to be edited.
        account = CustomerAccount.objects.create(organization=customer,
                                                 legal_name=customer.name,
                                                 country=issuer.country)
    return account


def _line(invoice: Invoice, position: int, cost: SessionCost, sign: int = 1) -> InvoiceLine:
    tx = cost.transaction
    site = tx.station.site
    duration = int(((tx.stopped_at or tx.started_at) - tx.started_at).total_seconds())
    return InvoiceLine(
        invoice=invoice, position=position, transaction=tx,
        description=f"Charging session {tx.station_id} #{tx.transaction_id}"[:200],
        started_at=tx.started_at, stopped_at=tx.stopped_at,
        time_zone=site.time_zone if site else "UTC", site_name=site.name if site else "",
        station_id=tx.station_id, card=tx.id_token_value, energy_wh=cost.energy_wh * sign,
        duration_seconds=max(duration, 0), idle_seconds=cost.idle_seconds,
        net_amount=cost.net * sign, vat_rate=cost.vat_rate,
    )


def generate(period_start: date, period_end: date, *, issuer: Issuer | None = None,
             customer: Organization | None = None, issue: bool = False,
             user: AbstractBaseUser | None = None) -> list[Invoice]:
    """Invoices (drafts, or issued with `issue`) for every customer with billable sessions.

    Idempotent: sessions already on an invoice are never added twice, and a customer's draft
    for the same period is extended rather than doubled.
    """
    if period_end < period_start:
        raise InvoiceError("The period ends before it starts.")
    issuers = [issuer] if issuer else list(Issuer.objects.all())
    made = []
    for each in issuers:
        with db.atomic():
            # One generation per issuer at a time; the same lock guards its numbers.
            locked = Issuer.objects.select_for_update().get(pk=each.pk)
            costs = billable(locked, period_end_instant(locked, period_end))
            if customer is not None:
                costs = costs.filter(customer=customer)
            by_customer: dict[int, list[SessionCost]] = defaultdict(list)
            for cost in costs:
                by_customer[cost.customer_id].append(cost)
            for customer_id, group in sorted(by_customer.items()):
                invoice = _draft(locked, customer_id, group, period_start, period_end)
                _audit(user, Action.INVOICES_GENERATED, invoice,
                       f"{len(group)} session(s) drafted on an invoice to {invoice.customer} "
                       f"for {period_start:%Y-%m-%d}..{period_end:%Y-%m-%d}",
                       sessions=[cost.transaction_id for cost in group])
                if issue:
                    _issue_locked(invoice, locked)
                    _audit(user, Action.INVOICE_ISSUED, invoice,
                           f"issued {invoice.number} to {invoice.customer}")
                made.append(invoice)
    return made


def _draft(issuer: Issuer, customer_id: int, costs: list[SessionCost], period_start: date,
           period_end: date) -> Invoice:
    customer = Organization.objects.get(pk=customer_id)
    account = _account(customer, issuer)
    currency = costs[0].currency
    # Locked: a draft being discarded meanwhile is waited for, then not found.
    invoice = Invoice.objects.select_for_update().filter(
        issuer=issuer, customer=customer, status=Invoice.Status.DRAFT,
        kind=Invoice.Kind.INVOICE, period_start=period_start, period_end=period_end,
        currency=currency,
    ).first() or Invoice.objects.create(
        issuer=issuer, customer=customer, period_start=period_start, period_end=period_end,
        currency=currency, buyer_reference=account.buyer_reference,
    )
    position = invoice.lines.count()
    lines = []
    for cost in costs:
        if cost.currency != currency:
            continue  # another currency goes on another invoice (the next run makes it)
        position += 1
        lines.append(_line(invoice, position, cost))
    InvoiceLine.objects.bulk_create(lines)
    SessionCost.objects.filter(pk__in=[c.pk for c in costs if c.currency == currency]).update(
        invoice=invoice)
    _total(invoice)
    invoice.save()
    return invoice


def issue(invoice: Invoice, user: AbstractBaseUser | None = None) -> Invoice:
    """Give a draft its number and freeze it."""
    with db.atomic():
        issuer = Issuer.objects.select_for_update().get(pk=invoice.issuer_id)
        fresh = _locked(invoice)
        _issue_locked(fresh, issuer)
        _audit(user, Action.INVOICE_ISSUED, fresh, f"issued {fresh.number} to {fresh.customer}")
    return fresh


def _issue_locked(invoice: Invoice, issuer: Issuer) -> None:
    if invoice.status != Invoice.Status.DRAFT:
        raise InvoiceError(f"{invoice} is {invoice.status}, not a draft.")
    if not invoice.lines.exists():
        raise InvoiceError("An invoice without lines cannot be issued.")
    _total(invoice)
    account = _account(invoice.customer, issuer)
    today = timezone.now().astimezone(ZoneInfo(issuer.time_zone)).date()
    invoice.sequence = issuer.next_number
    invoice.number = f"{issuer.number_prefix}{issuer.next_number:06d}"
    issuer.next_number += 1
    issuer.save(update_fields=["next_number"])
    invoice.seller = issuer.details() | {"iban": issuer.iban, "bic": issuer.bic}
    invoice.buyer = account.details()
    invoice.buyer_reference = invoice.buyer_reference or account.buyer_reference
    invoice.issue_date = today
    invoice.due_date = today + timedelta(days=issuer.payment_days)
    invoice.status = Invoice.Status.ISSUED
    invoice.issued_at = timezone.now()
    einvoice.refuse_unless_compliant(invoice)
    invoice.save()


def _locked(invoice: Invoice) -> Invoice:
    """The invoice's row, locked until the end of the transaction, as it is now: every change
    of state decides on this, never on a copy read before (a request racing another)."""
    try:
        return Invoice.objects.select_for_update().get(pk=invoice.pk)
    except Invoice.DoesNotExist:
        raise InvoiceError(f"{invoice} no longer exists (discarded meanwhile).") from None


def discard(invoice: Invoice, user: AbstractBaseUser | None = None) -> None:
    """Delete a draft; its sessions become billable again."""
    with db.atomic():
        fresh = _locked(invoice)
        if fresh.status != Invoice.Status.DRAFT:
            raise InvoiceError(f"Only a draft can be discarded; {fresh} is {fresh.status}: "
                               "correct an issued invoice with a credit note.")
        _audit(user, Action.INVOICE_DISCARDED, fresh,
               f"discarded the draft to {fresh.customer} ({fresh.lines.count()} line(s))")
        fresh.delete()


def mark_paid(invoice: Invoice, when: datetime | None = None,
              user: AbstractBaseUser | None = None) -> Invoice:
    with db.atomic():
        fresh = _locked(invoice)
        if fresh.kind != Invoice.Kind.INVOICE or fresh.status != Invoice.Status.ISSUED:
            raise InvoiceError(f"Only an issued invoice can be paid; {fresh} is "
                               f"{fresh.status}.")
        fresh.status, fresh.paid_at = Invoice.Status.PAID, when or timezone.now()
        fresh.save()
        _audit(user, Action.INVOICE_PAID, fresh, f"marked {fresh.number} paid")
    return fresh


def credit(invoice: Invoice, *, rebill: bool, reason: str = "",
           user: AbstractBaseUser | None = None) -> Invoice:
    """Cancel an issued (or paid) invoice with a credit note, issued at once with the next
    number. The invoice becomes void. Its sessions are billed again on the next invoice
    (`rebill`, e.g. after the customer's details were corrected) or not at all."""
    with db.atomic():
        issuer = Issuer.objects.select_for_update().get(pk=invoice.issuer_id)
        original = _locked(invoice)
        if original.kind != Invoice.Kind.INVOICE or original.status not in (
                Invoice.Status.ISSUED, Invoice.Status.PAID):
            raise InvoiceError(f"Only an issued or paid invoice can be credited; {original} "
                               f"is {original.status}.")
        note = Invoice.objects.create(
            issuer=issuer, customer=original.customer, kind=Invoice.Kind.CREDIT_NOTE,
            corrects=original, period_start=original.period_start,
            period_end=original.period_end, currency=original.currency,
            buyer_reference=original.buyer_reference,
            note=(reason or f"Cancels invoice {original.number}")[:300],
        )
        lines = []
        for line in original.lines.all():
            line.pk, line.invoice = None, note
            line.energy_wh, line.net_amount = -line.energy_wh, -line.net_amount
            lines.append(line)
        InvoiceLine.objects.bulk_create(lines)
        _issue_locked(note, issuer)
        original.status, original.voided_at = Invoice.Status.VOID, timezone.now()
        original.save()
        costs = SessionCost.objects.filter(invoice=original)
        if rebill:
            costs.update(invoice=None)
        else:
            costs.update(invoice=None, state=SessionCost.State.EXCLUDED,
                         note=f"credited by {note.number}")
        _audit(user, Action.INVOICE_CREDITED, original,
               f"cancelled {original.number} with credit note {note.number}"
               + (", sessions billed again" if rebill else ", sessions not billed"),
               credit_note=note.number, rebill=rebill, reason=reason)
    return note

