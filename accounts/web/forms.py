"""The pages' forms: they check what a person typed and say what is wrong in words; writing is
left to accounts.cards, accounts.people and accounts.organizations."""

from datetime import UTC, datetime, time, timedelta
from zoneinfo import available_timezones

from django import forms
from django.conf import settings
from django.contrib.admin.forms import AdminAuthenticationForm
from django.contrib.auth.forms import AuthenticationForm
from django.contrib.auth.models import AbstractBaseUser, User
from django.core.exceptions import ValidationError
from django.db.models import QuerySet

from accounts import access, audit, cards
from accounts.models import AuditEntry, IdToken, Membership, Organization


class CardForm(forms.Form):
    value = forms.CharField(label="Card number", max_length=36,
                            help_text="As the reader presents it: up to 36 characters "
                            "(an OCPP 1.6 charger reads at most 20).")
    token_type = forms.ChoiceField(label="Type", choices=IdToken.Type.choices,
                                   initial=IdToken.Type.ISO14443)
    status = forms.ChoiceField(choices=IdToken.Status.choices, initial=IdToken.Status.ACCEPTED)
    holder = forms.CharField(label="Holder / driver", max_length=200, required=False)
    group = forms.CharField(max_length=36, required=False,
                            help_text="Cards of one group cannot charge twice at the same time.")
    expires_at = forms.DateTimeField(
        label="Expires", required=False,
        widget=forms.DateTimeInput(attrs={"type": "datetime-local"}, format="%Y-%m-%dT%H:%M"),
        help_text="Empty: never.")
    organization = forms.ModelChoiceField(queryset=Organization.objects.none(), required=False,
                                          empty_label="the operator's own")
    allowed_sites = forms.ModelMultipleChoiceField(
        label="Only at these sites", queryset=None, required=False,
        widget=forms.CheckboxSelectMultiple, help_text="None ticked: every site.")

    def __init__(self, user: AbstractBaseUser, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.user = user
        self.fields["organization"].queryset = access.id_token_organizations_for(user)
        if not access.may_manage_id_tokens_of(user, None):
            self.fields["organization"].required = True
            self.fields["organization"].empty_label = None
        self.fields["allowed_sites"].queryset = access.sites_for(user)

    @classmethod
    def initial_of(cls, token: IdToken) -> dict:
        return {"value": token.value, "token_type": token.token_type, "status": token.status,
                "holder": token.holder, "group": token.group, "expires_at": token.expires_at,
                "organization": token.organization,
                "allowed_sites": list(token.allowed_sites.all())}

    def clean_value(self) -> str:
        try:
            return cards.check_value(self.cleaned_data["value"])
        except cards.CardError as error:
            raise forms.ValidationError(str(error)) from None

    def card(self) -> cards.CardData:
        data = self.cleaned_data
        return cards.CardData(
            value=data["value"], token_type=data["token_type"], status=data["status"],
            holder=data["holder"], group=data["group"], expires_at=data["expires_at"],
            allowed_sites=[site.pk for site in data["allowed_sites"]])


class ImportForm(forms.Form):
    file = forms.FileField(label="CSV file")
    organization = forms.ModelChoiceField(queryset=Organization.objects.none(), required=False,
                                          empty_label="the operator's own")

    def __init__(self, user: AbstractBaseUser, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.fields["organization"].queryset = access.id_token_organizations_for(user)
        if not access.may_manage_id_tokens_of(user, None):
            self.fields["organization"].required = True
            self.fields["organization"].empty_label = None


class CardFilter(forms.Form):
    q = forms.CharField(label="Card or holder", required=False, max_length=100)
    status = forms.ChoiceField(choices=[("", "any"), *IdToken.Status.choices,
                                        ("expired", "past expiry")], required=False)
    organization = forms.ModelChoiceField(queryset=Organization.objects.none(), required=False,
                                          empty_label="all")

    def __init__(self, user: AbstractBaseUser, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.fields["organization"].queryset = Organization.objects.filter(
            pk__in=access.id_tokens_for(user).values("organization"))


class AuditFilter(forms.Form):
    actor = forms.CharField(required=False, max_length=150, help_text="A user name, or system.")
    action = forms.ChoiceField(required=False, choices=[
        ("", "any"), ("card", "any card action"), ("member", "any membership change"),
        *AuditEntry.Action.choices])
    target = forms.CharField(required=False, max_length=120,
                             help_text="e.g. card:42, station:CP-1, user:7")
    text = forms.CharField(label="Words", required=False, max_length=100)
    since = forms.DateField(label="From", required=False,
                            widget=forms.DateInput(attrs={"type": "date"}))
    until = forms.DateField(label="Until (incl.)", required=False,
                            widget=forms.DateInput(attrs={"type": "date"}))

    def entries(self) -> QuerySet[AuditEntry]:
        data = self.cleaned_data
        since = datetime.combine(data["since"], time.min, UTC) if data.get("since") else None
        until = (datetime.combine(data["until"], time.min, UTC) + timedelta(days=1)
                 if data.get("until") else None)
        return audit.entries(actor=data.get("actor", ""), action=data.get("action", ""),
                             target=data.get("target", ""), text=data.get("text", ""),
                             since=since, until=until)


class MemberForm(forms.Form):
    username = forms.CharField(label="User name", max_length=150)
    password = forms.CharField(
        label="Password (new users only)", required=False, widget=forms.PasswordInput,
        help_text="Leave empty to give an existing user this role.")
    organization = forms.ModelChoiceField(queryset=Organization.objects.order_by("name"))
    role = forms.ChoiceField(choices=Membership.Role.choices)

    def clean(self) -> dict:
        data = super().clean()
        username = data.get("username", "").strip()
        data["user"] = User.objects.filter(username__iexact=username).first()
        if data["user"] is None and not data.get("password"):
            raise forms.ValidationError(f"There is no user {username}: give a password to "
                                        "create one.")
        return data


class RoleForm(forms.Form):
    role = forms.ChoiceField(choices=Membership.Role.choices)


class ThrottledAuthenticationForm(AuthenticationForm):
    """The login form, saying so when the account is throttled from this address
    (accounts.people.ThrottledModelBackend) rather than "wrong password"."""

    throttled = False

    def clean(self) -> dict:
        try:
            return super().clean()
        except ValidationError:
            if getattr(self.request, "login_throttled", False):
                self.throttled = True
                minutes = settings.LOGIN_FAILURE_WINDOW // 60
                raise ValidationError(
                    f"Too many failed logins for this account from your address. Try again "
                    f"in {minutes} minutes, or ask an administrator.", code="throttled",
                ) from None
            raise


class ThrottledAdminAuthenticationForm(ThrottledAuthenticationForm, AdminAuthenticationForm):
    """The admin's login form (staff only), saying so when the account is throttled."""


class OrganizationForm(forms.Form):
    name = forms.CharField(max_length=200)
    kind = forms.ChoiceField(choices=Organization.Kind.choices, initial=Organization.Kind.PROPERTY,
                             help_text="The operator runs the network; property owners have "
                             "sites; fleets have cards.")


class SiteForm(forms.Form):
    name = forms.CharField(max_length=200)
    organization = forms.ModelChoiceField(label="Owner organization",
                                          queryset=Organization.objects.order_by("name"))
    address = forms.CharField(max_length=300, required=False)
    time_zone = forms.ChoiceField(initial="UTC", help_text="Times of this site's sessions are "
                                  "shown in it.")

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.fields["time_zone"].choices = [(zone, zone) for zone in sorted(available_timezones())]
