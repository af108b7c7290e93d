"""The remote actions people take on a station, in one registry: the dashboard's forms and the
API's command endpoints are both generated from it.

An entry (`RemoteAction`) says
- its names: the dashboard's URL slug (/stations/<id>/actions/<name>/) and the API's path
  (/api/v1/stations/<id>/<api_path>/, or /api/v1/transactions/<id>/<api_path>/ for an action on
  one session);
- its label and help text: the form's legend, the endpoint's summary and description;
- the fields it takes, declared once as a DRF serializer: it validates the form's POST data and
  the API's JSON alike, and drf-spectacular describes it as the endpoint's request body. How the
  form shows a field is in the field's `style` (`select`, `text`, `buttons` below), with options
  that may depend on the station and the person;
- who may take it: a predicate on the person and the station;
- the command its validated fields become (stations/services/commands.py).

stations/web/views.py's `station_action` takes any entry from its form (the station page shows
one form per entry, dashboard/fragments/action_form.html); stations/api/views.py gives the
stations' and the transactions' viewsets one POST endpoint per entry. Both answer with the Call
as it ended.

Adding a command to chargers takes
1. its version-neutral type in stations/services/commands.py, and its builder in the gateway's
   block of each OCPP version that has the message (csms/gateway/blocks/);
2. one entry in ACTIONS below: a serializer of its fields and the command they become.
The form, the view, the endpoint, its permission check and its schema follow from the entry.
"""

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import cache
from typing import Any

from django.contrib.auth.models import AbstractBaseUser
from rest_framework import serializers
from rest_framework.fields import empty

from accounts import access, card_use
from accounts.models import IdToken
from stations.access import may_operate_station
from stations.models import Call, Station, Transaction
from stations.services import commands

# --- how a form shows a field ------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Option:
    """One choice a form offers for a field: an <option>, or a submit button."""

    value: str
    label: str
    css: str = ""  # a button's class: "danger" for what interrupts charging


# A field's options as the form offers them, read when the station page is shown.
Options = Callable[[Station, AbstractBaseUser], Sequence[Option]]


def _none(station: Station, user: AbstractBaseUser) -> Sequence[Option]:
    return ()


@dataclass(frozen=True, slots=True)
class Control:
    """How the form shows a field: "select" (one of the options), "text" (the options are
    suggestions) or "buttons" (a submit button per option). A select or buttons with no option
    to offer are left out, and the field takes its default."""

    kind: str
    label: str
    options: Options = _none


# A field's DRF `style` is what renderers read; the API's schema ignores it.
def select(label: str, options: Options) -> dict[str, Control]:
    return {"control": Control("select", label, options)}


def text(label: str, suggestions: Options = _none) -> dict[str, Control]:
    return {"control": Control("text", label, suggestions)}


def buttons(*choices: Option) -> dict[str, Control]:
    return {"control": Control("buttons", "", lambda station, user: choices)}


# The station page's station carries its connectors (fragments.with_connectors).

def evses_with_status(station: Station, user: AbstractBaseUser) -> Sequence[Option]:
    """Each EVSE with its (first) connector's status; EVSE 1 before any reported."""
    return [Option(str(c.evse.number), f"{c.evse.number} ({c.get_status_display()})")
            for c in station.connector_list if c.number == 1] or [Option("1", "1")]


def evse_numbers(station: Station, user: AbstractBaseUser) -> Sequence[Option]:
    numbers = sorted({c.evse.number for c in station.connector_list}) or [1]
    return [Option(str(number), str(number)) for number in numbers]


def connector_numbers(station: Station, user: AbstractBaseUser) -> Sequence[Option]:
    """Offered only where an EVSE has more than one connector: elsewhere it is always 1."""
    numbers = sorted({c.number for c in station.connector_list})
    return [Option(str(number), str(number)) for number in numbers] if len(numbers) > 1 else []


def station_or_evse(whole: str) -> Options:
    """The whole station (posted as `whole`) or one of its EVSEs."""
    def options(station: Station, user: AbstractBaseUser) -> Sequence[Option]:
        return [Option(whole, "the whole station"),
                *(Option(str(c.evse.number), f"connector {c.evse.number}")
                  for c in station.connector_list if c.number == 1)]
    return options


def id_token_values(station: Station, user: AbstractBaseUser) -> Sequence[Option]:
    """Cards the person may start with here: theirs (or any, for the operator) that charge at
    the station's site and are not blocked (commands.RemoteStart checks the rest)."""
    values = (access.id_token_numbers_for(user).filter(card_use.usable_at(station.site_id))
              .filter(status=IdToken.Status.ACCEPTED).values_list("value", flat=True)[:100])
    return [Option(value, value) for value in values]


TRIGGERS = ("BootNotification", "Heartbeat", "StatusNotification", "MeterValues",
            "FirmwareStatusNotification")


def trigger_messages(station: Station, user: AbstractBaseUser) -> Sequence[Option]:
    return [Option(message, message) for message in TRIGGERS]


class ChosenBooleanField(serializers.BooleanField):
    """A yes or no the person must choose: a form post without it is incomplete, where DRF
    would read it as an unticked checkbox (false)."""

    default_empty_html = empty


# --- the fields of each action -----------------------------------------------------------------

class RemoteStartSerializer(serializers.Serializer):
    evse = serializers.IntegerField(min_value=1, style=select("Connector", evses_with_status))
    id_token = serializers.CharField(max_length=36, style=text("ID token", id_token_values))


class ResetSerializer(serializers.Serializer):
    hard = serializers.BooleanField(default=False, style=buttons(
        Option("false", "Soft reset"), Option("true", "Hard reset", "danger")))


class UnlockSerializer(serializers.Serializer):
    evse = serializers.IntegerField(min_value=1, style=select("Connector", evse_numbers))
    connector = serializers.IntegerField(min_value=1, default=1,
                                         style=select("Plug", connector_numbers))


class AvailabilitySerializer(serializers.Serializer):
    evse = serializers.IntegerField(min_value=0, help_text="0 is the whole station.",
                                    style=select("Of", station_or_evse("0")))
    operative = ChosenBooleanField(style=buttons(
        Option("true", "Make operative"), Option("false", "Make inoperative", "danger")))


class TriggerSerializer(serializers.Serializer):
    message = serializers.CharField(
        max_length=50,
        help_text="BootNotification, Heartbeat, StatusNotification, MeterValues, ...",
        style=select("Message", trigger_messages))
    # The form's "whole station" posts an empty value: no EVSE named at all.
    evse = serializers.IntegerField(min_value=0, allow_null=True, default=None,
                                    style=select("For", station_or_evse("")))


# --- the registry ------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class RemoteAction:
    """One action people take on a station, for both surfaces (the module's docstring)."""

    name: str  # the dashboard's URL slug
    api_path: str  # the API's, under the station (or the session)
    label: str
    fields: type[serializers.Serializer] | None
    # The command to send, from the action's subject (the station, or the session when
    # on_session) and its validated fields.
    command: Callable[[Any, dict[str, Any]], commands.Command]
    help_text: str = ""
    allowed: Callable[[AbstractBaseUser, Station], bool] = may_operate_station
    # Taken on one running session, whose own page and row offer it, rather than on the station.
    on_session: bool = False
    # Asked before sending; {station} is the station's id.
    confirm: str = ""
    button: str = "Send"  # the submit button, unless a field's choices are the buttons
    button_class: str = ""

    def station_of(self, subject: Station | Transaction) -> Station:
        return subject.station if self.on_session else subject

    def check(self, data: Any) -> dict[str, Any]:
        """The fields of a form post or a request body, validated; ValidationError if not."""
        if self.fields is None:
            return {}
        form = self.fields(data=data)
        form.is_valid(raise_exception=True)
        return form.validated_data

    def send(self, subject: Station | Transaction, fields: dict[str, Any],
             user: AbstractBaseUser) -> Call:
        """Send the command; the Call as it ended (commands.send: CommandError if it cannot)."""
        return commands.send(self.station_of(subject), self.command(subject, fields), user=user)

    def readable(self, error: serializers.ValidationError) -> str:
        """What a refused form got wrong, for a person: "ID token: This field may not be blank." """
        labels = {}
        if self.fields is not None:
            labels = {name: _control(field).label or name
                      for name, field in self.fields().fields.items()}
        return " ".join(f"{labels.get(name, name)}: {' '.join(map(str, messages))}"
                        for name, messages in error.detail.items())

    def form(self, station: Station, user: AbstractBaseUser) -> "ActionForm":
        shown = []
        for name, field in (self.fields().fields.items() if self.fields else ()):
            control = _control(field)
            options = list(control.options(station, user))
            if options or control.kind == "text":
                shown.append(ShownField(
                    id=f"{self.name}-{name.replace('_', '-')}", name=name, kind=control.kind,
                    label=control.label, options=options, required=field.required,
                    max_length=getattr(field, "max_length", None)))
        return ActionForm(
            action=self, confirm=self.confirm.format(station=station.pk),
            fields=[field for field in shown if field.kind != "buttons"],
            buttons=next((field for field in shown if field.kind == "buttons"), None))


def _control(field: serializers.Field) -> Control:
    """A field's control; a field that names none is a text box labelled with its name."""
    return field.style.get("control") or Control("text", str(field.label))


@dataclass(frozen=True, slots=True)
class ShownField:
    id: str
    name: str
    kind: str
    label: str
    options: list[Option]
    required: bool
    max_length: int | None


@dataclass(frozen=True, slots=True)
class ActionForm:
    """An action's form on the station page (dashboard/fragments/action_form.html)."""

    action: RemoteAction
    confirm: str
    fields: list[ShownField]
    buttons: ShownField | None  # the field whose choices are the submit buttons


ACTIONS: tuple[RemoteAction, ...] = (
    RemoteAction(
        name="start", api_path="remote-start", label="Start a session",
        fields=RemoteStartSerializer,
        command=lambda station, fields: commands.RemoteStart(**fields),
        confirm="Start a session on {station}?", button="Start", button_class="primary",
    ),
    RemoteAction(
        name="stop", api_path="remote-stop", label="Stop a session", fields=None,
        command=lambda session, fields: commands.RemoteStop(session.transaction_id),
        on_session=True,
    ),
    RemoteAction(
        name="reset", api_path="reset", label="Reset the station",
        help_text="Soft: restart the software. Hard: power-cycle.",
        fields=ResetSerializer, command=lambda station, fields: commands.Reset(**fields),
        confirm="Reset {station}? Running sessions end.",
    ),
    RemoteAction(
        name="unlock", api_path="unlock", label="Unlock a connector", fields=UnlockSerializer,
        command=lambda station, fields: commands.Unlock(**fields),
        confirm="Unlock the chosen connector of {station}?", button="Unlock",
    ),
    RemoteAction(
        name="availability", api_path="availability", label="Change availability",
        fields=AvailabilitySerializer,
        command=lambda station, fields: commands.AvailabilityChange(**fields),
        confirm="Change the availability of {station}?",
    ),
    RemoteAction(
        name="trigger", api_path="trigger", label="Trigger a message",
        fields=TriggerSerializer, command=lambda station, fields: commands.MessageTrigger(**fields),
        confirm="Ask {station} to send this message now?", button="Trigger",
    ),
)

BY_NAME = {action.name: action for action in ACTIONS}


def forms_for(user: AbstractBaseUser, station: Station) -> list[ActionForm]:
    """The forms of the station's actions the user may take (those on a session are offered
    beside each running session instead)."""
    # The entries share a few predicates: each is asked once.
    verdict = cache(lambda allowed: allowed(user, station))
    return [action.form(station, user) for action in ACTIONS
            if not action.on_session and verdict(action.allowed)]
