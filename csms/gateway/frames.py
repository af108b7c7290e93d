"""OCPP-J framing: parse and validate frames, build replies, and the spec's error codes per version.

Wraps the `ocpp` library only for its official JSON schemas (cached validators, validated inline:
its thread-pool validation costs throughput). A payload is first checked by code that
fastjsonschema compiles from the same schema file with the library's Draft4Validator semantics;
only one that fails there goes through jsonschema, which names the error as before. The library's
own routing answers with swapped error codes and drops unparseable frames, so the RPC rules live
here (OCPP-J 1.6 §4, 2.0.1 Part 4 §4), per the negotiated version.
"""

import decimal
import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import cache
from pathlib import Path
from typing import Any

import ocpp
from django.conf import settings
from fastjsonschema.draft04 import CodeGeneratorDraft04
from fastjsonschema.generator import enforce_list
from fastjsonschema.ref_resolver import RefResolver
from jsonschema import Draft4Validator, ValidationError
from jsonschema.exceptions import best_match
from jsonschema.validators import extend

from stations.models import NumberEncoder

# Subprotocol → version, newest first: a charger offering several gets the newest.
SUBPROTOCOLS = {"ocpp2.0.1": "2.0.1", "ocpp1.6": "1.6"}

CALL, CALLRESULT, CALLERROR = 2, 3, 4
MAX_MESSAGE_ID = 36

# Error codes that differ between the versions; the rest are spelled alike.
_CODES = {
    "1.6": {
        # 1.6 has no RpcFrameworkError/MessageTypeNotSupported; its errata kept these spellings.
        "rpc": "FormationViolation",
        "message_type": "FormationViolation",
        "format": "FormationViolation",
        "occurrence": "OccurenceConstraintViolation",
    },
    "2.0.1": {
        "rpc": "RpcFrameworkError",
        "message_type": "MessageTypeNotSupported",
        "format": "FormatViolation",
        "occurrence": "OccurrenceConstraintViolation",
    },
}
_COMMON_CODES = {
    "not_implemented": "NotImplemented",  # action unknown to us
    "not_supported": "NotSupported",  # action known, but not one we handle
    "internal": "InternalError",
    "property": "PropertyConstraintViolation",
    "type": "TypeConstraintViolation",
    "protocol": "ProtocolError",
    "security": "SecurityError",
    "generic": "GenericError",
}


def error_code(kind: str, version: str) -> str:
    """The spec's word for an error kind in a version ("format" → FormationViolation in 1.6)."""
    return _CODES[version].get(kind) or _COMMON_CODES[kind]


class FrameError(Exception):
    """A frame or payload we answer with a CALLERROR; the connection stays open."""

    def __init__(self, kind: str, description: str, message_id: str = "-1", **details: Any):
        super().__init__(description)
        self.kind = kind
        self.description = description[:255]
        self.message_id = message_id
        self.details = details


@dataclass(slots=True)
class Call:
    message_id: str
    action: str
    payload: dict
    # The payload's JSON as the charger wrote it (parse): the message log stores it as it is,
    # which costs less than writing the dict out again.
    payload_json: str


@dataclass(slots=True)
class CallResult:
    message_id: str
    payload: dict


@dataclass(slots=True)
class CallError:
    message_id: str
    code: str
    description: str
    details: dict = field(default_factory=dict)


Frame = Call | CallResult | CallError

_ID_RE = re.compile(r'^\s*\[\s*\d+\s*,\s*"([^"\\]{1,36})"')


def message_id_of(text: str) -> str:
    """The message id of a frame we cannot parse whole, or "-1" when even that is unreadable."""
    match = _ID_RE.match(text[:200])
    return match.group(1) if match else "-1"


def _no_such_number(constant: str) -> None:
    # Python reads NaN and Infinity, JSON (RFC 8259) has no such numbers, and PostgreSQL refuses
    # them in jsonb: a frame with one could never be stored, and its charger would retry forever.
    raise ValueError(f"{constant} is not a JSON number")


# What a JSON decimal in a frame may be: an OCPP decimal as chargers' serializers write it, at
# most 40 digits and within an IEEE double's exponent. Python reads any literal, but what it read
# is converted later (to an int, a float, a column), and `1e999999999` turned into an int holds
# the only ORM thread for minutes: such a literal never gets past parse(). It is read in the
# context below, where more digits (Inexact) or a larger or smaller exponent (Overflow,
# Underflow, Clamped) raise; its create_decimal is C code, as fast as Decimal() itself.
MAX_NUMBER_DIGITS = 40
MAX_NUMBER_EXPONENT = 308
_LITERALS = decimal.Context(prec=MAX_NUMBER_DIGITS, Emax=MAX_NUMBER_EXPONENT,
                            Emin=-MAX_NUMBER_EXPONENT,
                            traps=[decimal.Inexact, decimal.Overflow, decimal.Underflow,
                                   decimal.Clamped, decimal.InvalidOperation])


def number_in_range(number: decimal.Decimal) -> bool:
    """Whether a number (a charger's, read from a string) is one parse() would let through."""
    return (number.is_finite() and len(number.as_tuple().digits) <= MAX_NUMBER_DIGITS
            and -MAX_NUMBER_EXPONENT <= number.adjusted() <= MAX_NUMBER_EXPONENT)


def parse(text: str) -> Frame:
    """Turn a text frame into a Call, CallResult or CallError; FrameError if it is none."""
    try:
        # Integers keep Python's own reader: it refuses more than 4,300 digits, and the schema
        # bounds every OCPP integer to 32 bits (_bounded); a `number` field's value is checked
        # where it is converted (number_in_range).
        frame = json.loads(text, parse_float=_LITERALS.create_decimal,
                           parse_constant=_no_such_number)
    except decimal.DecimalException:
        raise FrameError("type", f"A number has more than {MAX_NUMBER_DIGITS} digits or an "
                         f"exponent beyond ±{MAX_NUMBER_EXPONENT}", message_id_of(text)) from None
    except (ValueError, RecursionError):
        raise FrameError("rpc", "Frame is not valid JSON", message_id_of(text)) from None
    if not isinstance(frame, list) or len(frame) < 3:
        raise FrameError("rpc", "Frame is not an OCPP-J message array")
    message_type, message_id = frame[0], frame[1]
    if not isinstance(message_id, str) or not message_id:
        raise FrameError("rpc", "Message id is not a string")
    if len(message_id) > MAX_MESSAGE_ID:
        raise FrameError("rpc", f"Message id longer than {MAX_MESSAGE_ID} characters", message_id)
    if type(message_type) is not int:
        raise FrameError("rpc", "Message type is not a number", message_id)
    if "\\u" in text and _unstorable(frame):
        # Valid JSON, but PostgreSQL stores no NUL in text or jsonb, and no text (UTF-8) holds a
        # lone surrogate: it could never be logged, nor compared with what the database holds.
        raise FrameError("format", "A string holds a NUL (\\u0000) or a lone surrogate",
                         message_id)
    if message_type == CALL:
        if len(frame) != 4 or not isinstance(frame[2], str) or not isinstance(frame[3], dict):
            raise FrameError("format", "CALL must be [2, id, action, {payload}]", message_id)
        return Call(message_id, frame[2], frame[3], _payload_json(text))
    if message_type == CALLRESULT:
        if len(frame) != 3 or not isinstance(frame[2], dict):
            raise FrameError("format", "CALLRESULT must be [3, id, {payload}]", message_id)
        return CallResult(message_id, frame[2])
    if message_type == CALLERROR:
        if len(frame) not in (4, 5) or not all(isinstance(item, str) for item in frame[2:4]):
            raise FrameError("format", "CALLERROR must be [4, id, code, description, {}]",
                             message_id)
        details = frame[4] if len(frame) == 5 and isinstance(frame[4], dict) else {}
        return CallError(message_id, frame[2], frame[3], details)
    raise FrameError("message_type", "Message type is not supported", message_id)


def _unstorable(value: Any) -> bool:
    """Whether a string in the value holds a NUL or a lone surrogate (only \\u escapes make
    either: a frame's text came as UTF-8)."""
    if isinstance(value, str):
        return "\0" in value or (not value.isascii() and _has_surrogate(value))
    if isinstance(value, dict):
        return any(_unstorable(key) or _unstorable(item) for key, item in value.items())
    if isinstance(value, list):
        return any(_unstorable(item) for item in value)
    return False


def _has_surrogate(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


_SPACE = re.compile(r"[ \t\n\r]*")  # JSON's whitespace
_SCANNER = json.JSONDecoder()


def _payload_json(text: str) -> str:
    """The text of a CALL's payload, its fourth element, as the charger wrote it (the frame has
    been read as JSON already: [2, id, action, {payload}])."""
    at = _SPACE.match(text).end() + 1  # past "["
    for _ in range(3):  # message type, id and action, each with its comma
        _, at = _SCANNER.raw_decode(text, _SPACE.match(text, at).end())
        at = _SPACE.match(text, at).end() + 1
    return text[_SPACE.match(text, at).end():text.rindex("]")].rstrip(" \t\n\r")


@cache
def known_actions(version: str) -> frozenset[str]:
    """Every action the version defines, in either direction (its schema files)."""
    folder = Path(ocpp.__file__).parent / ("v" + version.replace(".", "")) / "schemas"
    suffix = "Request" if version != "1.6" else ""
    names = set()
    for path in folder.glob("*.json"):
        name = path.stem
        if name.endswith("Response"):
            continue
        names.add(name.removesuffix(suffix) if suffix else name)
    return frozenset(names)


# OCPP's integer is 32 bits, signed (1.6 and 2.0.1 Part 2, "Primitive datatypes"), and
# connectors and EVSEs count from 0 (the id of one is what `connectorId`, `evseId` and an EVSE's
# `id` hold), as a transaction's `seqNo` does. The schema files leave both out; a value beyond
# them fits no column a CSMS keeps it in. Every schema is read with these bounds added
# (`_bounded`), by both checks below. (definition, property): "" is any definition.
INT32 = (-(2**31), 2**31 - 1)
_NOT_NEGATIVE = {("", "connectorId"), ("", "evseId"), ("EVSEType", "id"), ("", "seqNo")}
# Except a 1.6 transaction's meter readings: a transaction message is never refused for a
# reading (its stop and times would be lost with it). The domain's plausible ranges judge them
# (stations/plausibility.py): an absurd one is kept in the message log and the session held
# for review.
_READINGS = {"meterStart", "meterStop"}


def _bounded(node: Any, not_negative: bool = False, definition: str = "",
             reading: bool = False) -> Any:
    """The schema (a node of it) with OCPP's integer range and the non-negative ids added."""
    if isinstance(node, list):
        return [_bounded(item) for item in node]
    if not isinstance(node, dict):
        return node
    bounded = {}
    for key, value in node.items():
        if key == "properties":
            bounded[key] = {name: _bounded(sub, ("", name) in _NOT_NEGATIVE
                                           or (definition, name) in _NOT_NEGATIVE,
                                           reading=name in _READINGS)
                            for name, sub in value.items()}
        elif key == "definitions":
            bounded[key] = {name: _bounded(sub, definition=name) for name, sub in value.items()}
        else:
            bounded[key] = _bounded(value)
    if "integer" in enforce_list(node.get("type", [])) and not reading:
        least = 0 if not_negative else INT32[0]
        bounded["minimum"] = max(node.get("minimum", least), least)
        bounded["maximum"] = min(node.get("maximum", INT32[1]), INT32[1])
    return bounded


@cache
def _schema(message_type: int, action: str, version: str) -> dict:
    """A message's schema as both checks read it: its numbers exact (a `multipleOf: 0.1` is
    0.1, not the float nearest to it) and OCPP's bounds added (_bounded)."""
    text = schema_path(message_type, action, version).read_text(encoding="utf-8-sig")
    return _bounded(json.loads(text, parse_float=decimal.Decimal))


def _exact(number: int | float | decimal.Decimal) -> decimal.Decimal:
    # A float as it is written (6.0, 21.4), not its binary value: what a person or a charger
    # meant, and what a `multipleOf: 0.1` is about.
    return decimal.Decimal(repr(number)) if isinstance(number, float) else decimal.Decimal(number)


# Enough digits for any quotient of two numbers parse() lets through.
_EXACT = decimal.Context(prec=2 * MAX_NUMBER_EXPONENT + 2 * MAX_NUMBER_DIGITS,
                         Emax=decimal.MAX_EMAX, Emin=decimal.MIN_EMIN)


def is_multiple(number: int | float | decimal.Decimal, step: int | float | decimal.Decimal
                ) -> bool:
    """`multipleOf` for any mix of int, float and Decimal (jsonschema's own raises TypeError on
    a float against a Decimal step, and rounds a float's quotient)."""
    value = _exact(number)
    if not value.is_finite():
        return False
    try:
        return _EXACT.remainder(value, _exact(step)) == 0
    except decimal.DecimalException:  # a quotient beyond _EXACT's digits: an int from the API
        return False


def _multiple_of(validator: Any, step: Any, instance: Any, schema: dict) -> Any:
    if validator.is_type(instance, "number") and not is_multiple(instance, step):
        yield ValidationError(f"is not a multiple of {step}")


# Draft 4, as the `ocpp` library checks (no format checks, no defaults filled in), with a
# multipleOf that takes every number type.
_Reference = extend(Draft4Validator, validators={"multipleOf": _multiple_of})


@cache
def reference_validator(message_type: int, action: str, version: str) -> Draft4Validator:
    """The jsonschema validator of a message: it names the error when the fast check fails."""
    return _Reference(_schema(message_type, action, version))


# Python types per JSON type as jsonschema's draft-4 type checker has them; fastjsonschema's own
# table also takes a tuple for an array, which jsonschema rejects.
_PYTHON_TYPES = {"null": "NoneType", "boolean": "bool", "number": "int, float, Decimal",
                 "integer": "int", "string": "str", "array": "list", "object": "dict"}


class _Draft4Code(CodeGeneratorDraft04):
    """fastjsonschema's draft-04 code, changed where it would pass what the reference validator
    rejects.

    The reference (`reference_validator`) is the `ocpp` library's Draft4Validator, without
    format checks and without filling defaults in; `_compile` asks for the same.
    `tests/gateway/test_frame_validation.py` holds the two to the same verdicts over every schema.
    """

    def generate_type(self) -> None:
        types = enforce_list(self._definition["type"])
        python_types = ", ".join(_PYTHON_TYPES[name] for name in types)  # KeyError: no fast path
        # A bool is an int in Python, and no number or integer in JSON Schema.
        extra = (" or isinstance({variable}, bool)"
                 if {"number", "integer"} & set(types) and "boolean" not in types else "")
        with self.l("if not isinstance({variable}, (" + python_types + "))" + extra + ":"):
            self.exc("{name} must be {}", " or ".join(types), rule="type")

    def generate_minimum(self) -> None:
        # An integer's bounds (every integer has both: _bounded) in one comparison, and no
        # isinstance: the type check before it let only an int through.
        if not self._bounded_integer():
            super().generate_minimum()
            return
        with self.l("if not {minimum} <= {variable} <= {maximum}:"):
            self.exc("{name} must be within {minimum} and {maximum}", rule="minimum")

    def generate_maximum(self) -> None:
        if not self._bounded_integer():
            super().generate_maximum()

    def _bounded_integer(self) -> bool:
        definition = self._definition
        return (definition.get("type") == "integer" and "minimum" in definition
                and "maximum" in definition and not definition.get("exclusiveMinimum")
                and not definition.get("exclusiveMaximum"))

    def generate_multiple_of(self) -> None:
        step = self._definition["multipleOf"]
        with self.l("if isinstance({variable}, (int, float, Decimal))"
                    " and not isinstance({variable}, bool)"
                    " and not is_multiple({variable}, " + repr(step) + "):"):
            self.exc("{name} must be multiple of {multipleOf}", rule="multipleOf")


def _no_remote(uri: str) -> Any:
    raise ValueError(f"OCPP schemas refer to themselves only, not to {uri}")


def schema_path(message_type: int, action: str, version: str) -> Path:
    """The schema file `ocpp.messages.get_validator` reads for this message."""
    suffix = {CALL: "Request" if version != "1.6" else "", CALLRESULT: "Response"}[message_type]
    return (Path(ocpp.__file__).parent / ("v" + version.replace(".", "")) / "schemas"
            / f"{action}{suffix}.json")


def _compile(message_type: int, action: str, version: str) -> Callable[[Any], Any]:
    """Validation code for one schema; raises when a schema uses what it does not mirror."""
    schema = _schema(message_type, action, version)
    resolver = RefResolver.from_schema(schema, handlers=dict.fromkeys(
        ("http", "https", "file", "urn", ""), _no_remote), store={})
    code = _Draft4Code(schema, resolver=resolver, use_default=False, use_formats=False,
                       detailed_exceptions=False)
    namespace = {**code.global_state, "is_multiple": is_multiple}
    exec(code.func_code, namespace)
    return namespace[resolver.get_scope_name()]


_fast: dict[tuple[int, str, str], Callable[[Any], Any] | None] = {}


def _fast_validator(message_type: int, action: str, version: str) -> Callable[[Any], Any] | None:
    """The compiled check of a known action's schema, cached; None: jsonschema alone decides."""
    key = (message_type, action, version)
    try:
        return _fast[key]
    except KeyError:
        pass
    if (version not in _CODES or message_type not in (CALL, CALLRESULT)
            or action not in known_actions(version)):
        return None  # not cached: a charger's made-up action names must not grow the cache
    try:
        check = _compile(message_type, action, version)
    except Exception:  # a missing file or a keyword not mirrored: jsonschema alone, as before
        check = None
    _fast[key] = check
    return check


# The CALLERROR kind per schema keyword (OCPP-J: a missing field is an occurrence, a wrong JSON
# type a type, a property the schema does not define a format error); any other, "property".
_KINDS = {"required": "occurrence", "minItems": "occurrence", "maxItems": "occurrence",
          "type": "type", "additionalProperties": "format"}


def validate(message_type: int, action: str, payload: dict, version: str,
             message_id: str = "-1") -> None:
    """Check a payload against the version's official schema; FrameError names the right code."""
    fast = _fast_validator(message_type, action, version)
    if fast is not None:
        try:
            fast(payload)
        except Exception:  # invalid, or what jsonschema raises on too: it decides below, as before
            pass
        else:
            return
    if action not in known_actions(version):
        raise FrameError("not_implemented", "Unknown action", message_id)
    try:
        error = best_match(reference_validator(message_type, action, version)
                           .iter_errors(payload))
    except (ArithmeticError, TypeError):  # a number no comparison takes (an infinite float)
        raise FrameError("property", "A number is out of range", message_id) from None
    if error is None:
        return
    where = "/".join(str(part) for part in error.absolute_path) or "(payload)"
    raise FrameError(_KINDS.get(str(error.validator), "property"),
                     f"{where}: {_rule(error)}", message_id, field=where)


def _rule(error: ValidationError) -> str:
    """What the field must be, in the schema's words: never the value it holds (a CALLERROR
    goes back to the charger and into logs; the value may be anyone's secret or anything)."""
    rule, bound = str(error.validator), error.validator_value
    if rule == "required":
        present = error.instance if isinstance(error.instance, dict) else {}
        missing = [name for name in bound if name not in present]
        return "required property missing: " + ", ".join(missing)
    described = {
        "type": lambda: "must be of type " + " or ".join(enforce_list(bound)),
        "enum": lambda: "is not one of the values the schema lists",
        "maxLength": lambda: f"is longer than {bound} characters",
        "minLength": lambda: f"is shorter than {bound} characters",
        "maximum": lambda: f"is greater than {bound}",
        "minimum": lambda: f"is less than {bound}",
        "multipleOf": lambda: f"is not a multiple of {bound}",
        "maxItems": lambda: f"has more than {bound} items",
        "minItems": lambda: f"has fewer than {bound} items",
        "additionalProperties": lambda: "has a property the schema does not define",
        "pattern": lambda: "does not match the schema's pattern",
    }.get(rule)
    return described() if described else f"does not satisfy the schema's {rule}"


def dumps(value: list | dict) -> str:
    """A frame, or a payload as it goes into one."""
    return json.dumps(value, separators=(",", ":"), default=_json_default)


def _json_default(value: Any) -> Any:
    if isinstance(value, datetime):
        return utc_timestamp(value)
    return NumberEncoder().default(value)


def call_frame(message_id: str, action: str, payload: dict) -> str:
    return dumps([CALL, message_id, action, payload])


def result_frame(message_id: str, payload_json: str) -> str:
    """A CALLRESULT around its payload, written already (dumps): the message log stores the
    same text."""
    return f"[{CALLRESULT},{json.dumps(message_id)},{payload_json}]"


def error_frame(message_id: str, code: str, description: str, details: dict | None = None) -> str:
    return dumps([CALLERROR, message_id, code, description, details or {}])


def utc_timestamp(moment: datetime) -> str:
    """UTC with a Z and milliseconds: the form every charger's validator accepts."""
    moment = moment.astimezone(UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def utc_now() -> str:
    """The current time as chargers are told it (utc_timestamp)."""
    return utc_timestamp(datetime.now(UTC))


def parse_timestamp(text: str) -> datetime:
    """An RFC 3339 date-time from a charger, in UTC; one without an offset is taken as UTC."""
    try:
        moment = datetime.fromisoformat(text.replace("z", "Z"))
        # Year 1 an hour east, or 9999 a day west, is no instant Python (or a column) can hold.
        return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).astimezone(UTC)
    except (TypeError, ValueError, OverflowError):
        raise FrameError("property", "Not an RFC 3339 date-time in years 1 to 9999") from None


def event_time(text: str) -> datetime:
    """When something happened, as the charger's clock says: parse_timestamp, within the drift
    the CSMS accepts around its own clock (settings.OCPP CLOCK_PAST_DAYS, CLOCK_AHEAD). Further
    off, it is no clock's reading but a reset or broken one (year 1, 1970, 2300), and
    nothing could be ordered, shown or billed by it: the message is refused with
    PropertyConstraintViolation (kept in the message log), transaction messages too."""
    moment = parse_timestamp(text)
    now = datetime.now(UTC)
    if not (now - timedelta(days=settings.OCPP["CLOCK_PAST_DAYS"]) <= moment
            <= now + timedelta(seconds=settings.OCPP["CLOCK_AHEAD"])):
        raise FrameError("property", "Timestamp is further from the CSMS's clock than the "
                         "drift it accepts")
    return moment
