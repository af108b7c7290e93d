"""VAT of a document per rate: what an invoice's totals, its PDF, its CSV and its e-invoice all
show, computed in one place so the four agree to the cent."""

from collections import defaultdict
from dataclasses import dataclass
from decimal import Decimal

from billing.costing import vat_of
from billing.models import ZERO, Invoice


@dataclass(frozen=True, slots=True)
class VatGroup:
    rate: Decimal
    base: Decimal
    amount: Decimal


def vat_groups(invoice: Invoice) -> list[VatGroup]:
    """VAT per rate, on the sum of the lines' nets at that rate (EN 16931 BR-CO-17)."""
    bases: dict[Decimal, Decimal] = defaultdict(lambda: ZERO)
    for rate, net in invoice.lines.values_list("vat_rate", "net_amount"):
        bases[rate] += net
    return [VatGroup(rate, base, vat_of(base, rate)) for rate, base in sorted(bases.items())]
