"""Forms of the billing pages: what a person types, checked before the services write it."""

from datetime import date
from decimal import Decimal

from django import forms
from django.utils import timezone

from accounts.models import Organization, Site
from billing.invoices import month
from billing.models import CustomerAccount, Issuer, Tariff, TariffVersion
from billing.tariffs import PRICE_FIELDS, WindowSpec
from stations.models import Station

WEEKDAYS = [("0", "Mon"), ("1", "Tue"), ("2", "Wed"), ("3", "Thu"), ("4", "Fri"), ("5", "Sat"),
            ("6", "Sun")]


class VersionForm(forms.ModelForm):
    valid_from = forms.DateTimeField(
        help_text="UTC, e.g. 2026-12-01 00:00. Not in the past: priced sessions keep theirs.",
        widget=forms.DateTimeInput(attrs={"type": "datetime-local"}))

    class Meta:
        model = TariffVersion
        fields = ["valid_from", *PRICE_FIELDS]

    def clean(self) -> dict:
        data = super().clean()
        low, high = data.get("min_price"), data.get("max_price")
        if low is not None and high is not None and low > high:
            raise forms.ValidationError("The minimum session price is above the maximum.")
        return data


class TariffForm(forms.ModelForm):
    class Meta:
        model = Tariff
        fields = ["name", "issuer", "currency"]


class WindowForm(forms.Form):
    label = forms.CharField(max_length=50)
    weekdays = forms.MultipleChoiceField(choices=WEEKDAYS, widget=forms.CheckboxSelectMultiple)
    start = forms.TimeField(widget=forms.TimeInput(attrs={"type": "time"}))
    end = forms.TimeField(widget=forms.TimeInput(attrs={"type": "time"}),
                          help_text="At or before the start: runs into the next day.")
    price_kwh = forms.DecimalField(min_value=0, max_digits=12, decimal_places=4)
    price_minute = forms.DecimalField(min_value=0, max_digits=12, decimal_places=4,
                                      required=False, help_text="Empty: 0.")

    def spec(self) -> WindowSpec:
        data = self.cleaned_data
        return WindowSpec(data["label"], "".join(sorted(data["weekdays"])), data["start"],
                          data["end"], data["price_kwh"], data["price_minute"] or Decimal(0))


WindowFormSet = forms.formset_factory(WindowForm, extra=2, can_delete=True)


def window_specs(formset) -> list[WindowSpec]:
    return [form.spec() for form in formset.forms
            if form.cleaned_data and not form.cleaned_data.get("DELETE")]


class AssignmentForm(forms.Form):
    site = forms.ModelChoiceField(Site.objects.all(), required=False)
    station = forms.ModelChoiceField(Station.objects.all(), required=False)
    customer = forms.ModelChoiceField(Organization.objects.all(), required=False,
                                      help_text="Only this customer's sessions (fleet "
                                                "pricing); empty for everyone.")

    def clean(self) -> dict:
        data = super().clean()
        if bool(data.get("site")) == bool(data.get("station")):
            raise forms.ValidationError("Choose a site or a station (one of them).")
        return data


def _month_choices() -> list[tuple[str, str]]:
    today = timezone.now().date().replace(day=1)
    months = []
    year, month = today.year, today.month
    for _ in range(13):
        months.append((f"{year}-{month:02d}", f"{year}-{month:02d}"))
        year, month = (year, month - 1) if month > 1 else (year - 1, 12)
    return months


class PeriodForm(forms.Form):
    """A calendar month (the default: last month)."""

    month = forms.ChoiceField(choices=_month_choices)

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["month"].initial = self.fields["month"].choices[1][0]

    def period(self) -> tuple[date, date]:
        year, number = (int(part) for part in self.cleaned_data["month"].split("-"))
        return month(year, number)


class GenerateForm(PeriodForm):
    customer = forms.ModelChoiceField(Organization.objects.order_by("name"), required=False,
                                      empty_label="every customer",
                                      help_text="Only this customer's sessions.")
    issue = forms.BooleanField(required=False, help_text="Issue them at once (numbers are "
                                                         "given; they cannot change after).")


class CreditForm(forms.Form):
    reason = forms.CharField(max_length=300, required=False)
    rebill = forms.BooleanField(required=False, initial=True,
                                help_text="Bill the sessions again on the next invoice.")


class ExcludeForm(forms.Form):
    note = forms.CharField(max_length=200, required=False)


class CorrectEnergyForm(forms.Form):
    """The energy a session really delivered, when its meter's cannot be used."""

    kwh = forms.DecimalField(label="Energy (kWh)", min_value=0, max_digits=12, decimal_places=3,
                             help_text="Billed as if charged evenly from start to stop.")
    reason = forms.CharField(max_length=200, help_text="e.g. meter rollover, read on the "
                                                       "charger's display")

    def energy_wh(self) -> Decimal:
        return self.cleaned_data["kwh"] * 1000


class IssuerForm(forms.ModelForm):
    class Meta:
        model = Issuer
        fields = ["organization", "legal_name", "street", "postcode", "city", "country",
                  "vat_id", "tax_number", "registration_id", "email", "iban", "bic",
                  "number_prefix", "payment_days", "time_zone"]


class CustomerAccountForm(forms.ModelForm):
    class Meta:
        model = CustomerAccount
        fields = ["legal_name", "street", "postcode", "city", "country", "vat_id", "email",
                  "buyer_reference"]
