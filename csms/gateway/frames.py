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
from datetime import UTC, datetime
from functools import cache
from pathlib import Path
from typing import Any

import ocpp
from fastjsonschema.draft04 import CodeGeneratorDraft04
from fastjsonschema.generator import enforce_list
from fastjsonschema.ref_resolver import RefResolver
from jsonschema.exceptions import best_match
from ocpp.messages import get_validator

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


def parse(text: str) -> Frame:
    """Turn a text frame into a Call, CallResult or CallError; FrameError if it is none."""
    try:
        frame = json.loads(text, parse_float=decimal.Decimal, parse_constant=_no_such_number)
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
    if "\\u0000" in text and _has_nul(frame):
        # Valid JSON, but PostgreSQL stores no NUL in text or jsonb: it could never be logged.
        raise FrameError("format", "Frame contains a NUL character (\\u0000)", message_id)
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
    raise FrameError("message_type", f"Message type {message_type} is not supported", message_id)


def _has_nul(value: Any) -> bool:
    if isinstance(value, str):
        return "\0" in value
    if isinstance(value, dict):
        return any(_has_nul(key) or _has_nul(item) for key, item in value.items())
    if isinstance(value, list):
        return any(_has_nul(item) for item in value)
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


# 1.6 schemas with `multipleOf: 0.1` must be checked with Decimal, or 21.4 fails as a float.
_DECIMAL_SCHEMAS = {("1.6", CALL, "SetChargingProfile"), ("1.6", CALL, "RemoteStartTransaction"),
                    ("1.6", CALLRESULT, "GetCompositeSchedule")}


# Python types per JSON type as jsonschema's draft-4 type checker has them; fastjsonschema's own
# table also takes a tuple for an array, which jsonschema rejects.
_PYTHON_TYPES = {"null": "NoneType", "boolean": "bool", "number": "int, float, Decimal",
                 "integer": "int", "string": "str", "array": "list", "object": "dict"}


class _Draft4Code(CodeGeneratorDraft04):
    """fastjsonschema's draft-04 code, changed where it would pass what Draft4Validator rejects.

    The `ocpp` library checks both versions' schemas with Draft4Validator, without format checks
    and without filling defaults in; `_compile` asks for the same.
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

    def generate_multiple_of(self) -> None:
        # jsonschema's test for a Decimal or int step (the 1.6 schemas in _DECIMAL_SCHEMAS): the
        # remainder, so 21.4 passes as a Decimal; a float payload raises TypeError here and there.
        # Its float-step test is not copied: such a schema gets no fast path.
        step = self._definition["multipleOf"]
        if not isinstance(step, int | decimal.Decimal):
            raise ValueError("multipleOf: only an int or Decimal step has a fast path")
        with self.l("if isinstance({variable}, (int, float, Decimal))"
                    " and not isinstance({variable}, bool) and {variable} % " + repr(step) + ":"):
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
    parse_float = decimal.Decimal if (version, message_type, action) in _DECIMAL_SCHEMAS else float
    text = schema_path(message_type, action, version).read_text(encoding="utf-8-sig")
    schema = json.loads(text, parse_float=parse_float)
    resolver = RefResolver.from_schema(schema, handlers=dict.fromkeys(
        ("http", "https", "file", "urn", ""), _no_remote), store={})
    code = _Draft4Code(schema, resolver=resolver, use_default=False, use_formats=False,
                       detailed_exceptions=False)
    namespace = code.global_state
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
    parse_float = decimal.Decimal if (version, message_type, action) in _DECIMAL_SCHEMAS else float
    try:
        validator = get_validator(message_type, action, version, parse_float=parse_float)
    except OSError:
        raise FrameError("not_implemented", f"Unknown action {action}", message_id) from None
    error = best_match(validator.iter_errors(payload))
    if error is None:
        return
    kind = {
        "required": "occurrence",
        "minItems": "occurrence",
        "maxItems": "occurrence",
        "type": "type",
        "additionalProperties": "format",
    }.get(str(error.validator), "property")
    where = "/".join(str(part) for part in error.absolute_path) or "(payload)"
    # Details stay short: a schema error must not echo a charger's whole (maybe huge) payload.
    raise FrameError(kind, f"{where}: {error.message[:120]}", message_id, field=where)


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
    """An RFC 3339 date-time from a charger; one without an offset is taken as UTC."""
    try:
        moment = datetime.fromisoformat(text.replace("z", "Z"))
    except (TypeError, ValueError):
        raise FrameError("property", f"Not an RFC 3339 date-time: {str(text)[:40]}") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)
