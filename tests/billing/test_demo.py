"""The demo's billing: `make run` prices the simulated sessions and finance can invoice them."""

from datetime import timedelta
from decimal import Decimal

import pytest
from django.core.management import call_command
from django.db import transaction
from django.utils import timezone

from accounts.models import IdToken
from billing import invoices, pdf
from billing.models import Invoice, SessionCost
from stations import records
from stations.models import Station, TransactionMessage
from stations.services import transactions

pytestmark = pytest.mark.django_db


def test_demo_sessions_are_priced_and_invoiced(settings):
    settings.DEBUG = True
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher",
                                 "stations.passwords.ChargerPasswordHasher"]
    call_command("demo_data", stdout=None)
    call_command("demo_data", stdout=None)  # idempotent: one tariff, one issuer
    station = Station.objects.get(pk="DEMO-201-0002")
    card = IdToken.objects.get(value="DEMO-CARD-3")  # Blue Fleet's
    start = timezone.now().replace(hour=12, minute=0, second=0, microsecond=0) - timedelta(
        days=1)
    with transaction.atomic():
        tx, _ = transactions.transaction_report(station, records.TransactionReport(
            kind=TransactionMessage.Kind.START, timestamp=start, transaction_id="demo-1",
            evse=1, connector=1, id_token=card.value, meter_wh=Decimal(0)))
        transactions.transaction_report(station, records.TransactionReport(
            kind=TransactionMessage.Kind.END, timestamp=start + timedelta(hours=1),
            transaction_id="demo-1", meter_wh=Decimal(10000), stop_reason="EVDisconnected"))
    cost = SessionCost.objects.get(transaction=tx)
    # Noon in Hamburg: day price 10 kWh x 0.39 + 0.50 session fee = 4.40 net, 5.24 with VAT.
    assert (cost.state, cost.net, cost.gross) == ("final", Decimal("4.40"), Decimal("5.24"))
    month = invoices.month(start.year, start.month)
    invoice, = invoices.generate(*month, issue=True)
    assert invoice.number == "DEMO-000001" and invoice.buyer["legal_name"] == (
        "Blue Fleet Logistics AG")
    assert Invoice.objects.get().gross_total == Decimal("5.24")
    assert pdf.render(invoice).startswith(b"%PDF")
