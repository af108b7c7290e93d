"""frames.validate's compiled fast path gives jsonschema's verdict on every OCPP schema.

validate() first runs code that fastjsonschema compiled from the schema and asks the `ocpp`
library's jsonschema Draft4Validator only when that code does not pass the payload. That is only
safe while the compiled code never passes a payload that jsonschema rejects or raises on. For every
action and direction of 1.6 and 2.0.1 these tests build a valid payload from the schema and
hundreds of broken ones (missing required, wrong type, extra property, bad enum, string too long,
Decimal and float numbers, tuples, bad date-times that neither checks) and hold both to the same
verdict; for the hot-path messages they also compare the CALLERROR validate() raises with the one
jsonschema alone gives.
"""

import copy
import decimal
import json
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import pytest
from fastjsonschema import JsonSchemaValueException
from fastjsonschema.generator import enforce_list
from jsonschema.exceptions import best_match

from csms.gateway import frames

SCHEMAS = [(version, message_type, action)
           for version in ("1.6", "2.0.1")
           for action in sorted(frames.known_actions(version))
           for message_type in (frames.CALL, frames.CALLRESULT)]

TIMESTAMP = "2025-03-01T12:00:00.000Z"
EXTRA = "unexpectedProperty"
# Values put in place of every node of a valid payload: other JSON types, ints and numbers as
# parse() gives them (Decimal) and as handlers build them (int, float), and non-JSON tuples.
PROBES: list[Any] = [None, True, False, 0, 1, -1, 2**63, Decimal("1"), Decimal("1.0"),
                     Decimal("21.4"), Decimal("21.45"), Decimal("-0.5"), Decimal("1E+2"), 1.0,
                     21.4, float("inf"), float("nan"), "", "x", "1", "NotAValue",
                     "not a date-time", [], {}, {EXTRA: 1}, ("x",)]


def _reference(version: str, message_type: int, action: str) -> Any:
    """The jsonschema validator validate() falls back to."""
    return frames.reference_validator(message_type, action, version)


def _deref(schema: dict, root: dict) -> dict:
    while "$ref" in schema:
        node: Any = root
        for part in schema["$ref"].removeprefix("#/").split("/"):
            node = node[part]
        schema = node
    return schema


def _example(schema: dict, root: dict, depth: int = 0) -> Any:
    """A valid value with every optional property filled in (as far as these schemas go)."""
    assert depth < 20, "recursive schema"
    schema = _deref(schema, root)
    if "enum" in schema:
        return schema["enum"][0]
    kind = schema.get("type")
    if kind == "object":
        return {name: _example(sub, root, depth + 1)
                for name, sub in schema.get("properties", {}).items()}
    if kind == "array":
        return [_example(schema.get("items", {}), root, depth + 1)
                for _ in range(max(1, schema.get("minItems", 1)))]
    if kind == "string":
        return TIMESTAMP if schema.get("format") == "date-time" else "x" * min(
            3, schema.get("maxLength", 3))
    if kind == "integer":
        return min(max(1, schema.get("minimum", 1)), schema.get("maximum", 1_000))
    if kind == "number":  # a multiple of 0.1 once parsed as a Decimal, within the bounds
        return float(min(max(Decimal("21.4"), schema.get("minimum", 0)),
                         schema.get("maximum", Decimal("21.4"))))
    if kind == "boolean":
        return True
    assert kind is None, f"no example for {schema}"
    return "x"  # an untyped value (DataTransfer data): anything goes


def _nodes(schema: dict, value: Any, root: dict,
           path: tuple = ()) -> Iterator[tuple[tuple, dict, Any]]:
    schema = _deref(schema, root)
    yield path, schema, value
    if isinstance(value, dict):
        for key, item in value.items():
            yield from _nodes(schema.get("properties", {}).get(key, {}), item, root, (*path, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _nodes(schema.get("items", {}), item, root, (*path, index))


def _replaced(payload: dict, path: tuple, value: Any) -> dict:
    mutated = copy.deepcopy(payload)
    node: Any = mutated
    for part in path[:-1]:
        node = node[part]
    node[path[-1]] = value
    return mutated


def _variants(schema: dict, value: Any) -> list[Any]:
    """What a node may be replaced with: the probes, and values at this schema's own limits."""
    found = list(PROBES)
    if "maxLength" in schema:
        limit = schema["maxLength"]
        # Both count code points: an emoji is one character, not two.
        found += ["x" * limit, "x" * (limit + 1), "\U0001f600" * limit,
                  "\U0001f600" * (limit + 1)]
    if "enum" in schema:
        found += [schema["enum"][-1], str(schema["enum"][0]).lower()]
    for bound in ("minimum", "maximum"):
        if bound in schema:
            found += [schema[bound] - 1, schema[bound], schema[bound] + 1,
                      Decimal(schema[bound]), float(schema[bound])]
    if "multipleOf" in schema:
        # Decimal % raises InvalidOperation on the 1E+30 ones, float % Decimal raises TypeError.
        found += [Decimal("21.45"), Decimal("0.1"), 21, 10**30, Decimal("1E+30"), 21.5,
                  Decimal("NaN")]
    if isinstance(value, list):
        found += [value * (schema.get("maxItems", 1) + 1), tuple(value)]
    if isinstance(value, dict):
        found += [{key: item for key, item in value.items() if key != dropped}
                  for dropped in value]
        found.append({**value, EXTRA: 1})
    return found


def _payloads(schema: dict) -> Iterator[tuple[str, dict]]:
    """The valid example, parsed as parse() parses a frame, and every mutation of it."""
    example = json.loads(json.dumps(_example(schema, schema)), parse_float=decimal.Decimal)
    yield "example", example
    yield "empty", {}
    for path, subschema, value in _nodes(schema, example, schema):
        for variant in _variants(subschema, value):
            if path:
                yield f"{path} = {variant!r:.40}", _replaced(example, path, variant)
            elif isinstance(variant, dict):
                yield f"payload = {variant!r:.40}", variant


def _jsonschema_verdict(validator: Any, payload: dict) -> str:
    try:
        return "valid" if best_match(validator.iter_errors(payload)) is None else "invalid"
    except Exception as error:  # validate() let such errors through before the fast path, too
        return f"raises {type(error).__name__}"


def _fast_verdict(check: Any, payload: dict) -> str:
    before = copy.deepcopy(payload)
    try:
        check(payload)
    except JsonSchemaValueException:
        return "invalid"
    except Exception as error:
        return f"raises {type(error).__name__}"
    finally:
        assert payload == before, "the compiled check changed the payload (defaults?)"
    return "valid"


@pytest.mark.parametrize(("version", "message_type", "action"), SCHEMAS,
                         ids=[f"{v}-{'req' if t == 2 else 'conf'}-{a}" for v, t, a in SCHEMAS])
def test_compiled_check_agrees_with_jsonschema(version: str, message_type: int,
                                               action: str) -> None:
    check = frames._fast_validator(message_type, action, version)
    assert check is not None, "every OCPP schema gets a fast path"
    reference = _reference(version, message_type, action)
    disagreements = []
    count = valid = 0
    for label, payload in _payloads(reference.schema):
        slow, fast = _jsonschema_verdict(reference, payload), _fast_verdict(check, payload)
        count += 1
        valid += slow == "valid"
        if label == "example":
            assert slow == "valid", f"the built example is invalid: {payload}"
        # Passing is all that matters: anything else goes to jsonschema, which decides.
        if (slow == "valid") != (fast == "valid"):
            disagreements.append(f"{label}: jsonschema {slow}, compiled {fast}")
    assert not disagreements, "\n".join(disagreements[:20])
    assert count > valid > 0  # both verdicts were exercised


HOT = [("1.6", "Heartbeat"), ("1.6", "StatusNotification"), ("1.6", "MeterValues"),
       ("1.6", "StartTransaction"), ("2.0.1", "Heartbeat"), ("2.0.1", "StatusNotification"),
       ("2.0.1", "TransactionEvent"), ("2.0.1", "MeterValues"), ("1.6", "SetChargingProfile")]


def _outcome(payload: dict, version: str, action: str) -> tuple:
    try:
        frames.validate(frames.CALL, action, payload, version, message_id="m1")
    except frames.FrameError as error:
        return error.kind, error.description, error.message_id, error.details
    except Exception as error:
        return ("raises", type(error).__name__)
    return ("ok",)


@pytest.mark.parametrize(("version", "action"), HOT)
def test_callerror_is_what_jsonschema_alone_gives(version: str, action: str,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    schema = _reference(version, frames.CALL, action).schema
    cases = list(_payloads(schema))
    fast = [_outcome(payload, version, action) for _, payload in cases]
    monkeypatch.setattr(frames, "_fast_validator", lambda *key: None)
    slow = [_outcome(payload, version, action) for _, payload in cases]
    assert [label for (label, _), a, b in zip(cases, fast, slow, strict=True) if a != b] == []
    kinds = {outcome[0] for outcome in slow}
    assert "ok" in kinds and kinds - {"ok"}  # both passed and rejected payloads were compared


def test_unknown_action_is_not_implemented_and_not_cached() -> None:
    cached = len(frames._fast)
    for name in ("NoSuchAction", "../v16/schemas/Heartbeat", "Heartbeat "):
        with pytest.raises(frames.FrameError) as caught:
            frames.validate(frames.CALL, name, {}, "1.6", message_id="m2")
        assert (caught.value.kind, caught.value.message_id) == ("not_implemented", "m2")
    assert len(frames._fast) == cached


def test_decimal_schema_takes_a_decimal_tenth() -> None:
    """1.6 SetChargingProfile: 21.4 parsed as a Decimal passes, 21.45 does not (multipleOf 0.1)."""
    frame = ('[2, "1", "SetChargingProfile", {"connectorId": 1, "csChargingProfiles": '
             '{"chargingProfileId": 1, "stackLevel": 0, "chargingProfilePurpose": "TxProfile", '
             '"chargingProfileKind": "Absolute", "chargingSchedule": {"chargingRateUnit": "A", '
             '"chargingSchedulePeriod": [{"startPeriod": 0, "limit": LIMIT}]}}}]')
    ok = frames.parse(frame.replace("LIMIT", "21.4"))
    frames.validate(frames.CALL, ok.action, ok.payload, "1.6")
    bad = frames.parse(frame.replace("LIMIT", "21.45"))
    with pytest.raises(frames.FrameError) as caught:
        frames.validate(frames.CALL, bad.action, bad.payload, "1.6")
    assert caught.value.kind == "property" and "multiple of" in caught.value.description


def _number_nodes(schema: dict, root: dict, path: tuple = ()) -> Iterator[tuple[tuple, dict]]:
    """Every node of a valid example whose schema bounds or steps a number (integers' 32 bits
    aside: validate() adds those)."""
    schema = _deref(schema, root)
    if {"multipleOf", "minimum", "maximum"} & set(schema):
        yield path, schema
    for name, sub in schema.get("properties", {}).items():
        yield from _number_nodes(sub, root, (*path, name))
    if schema.get("type") == "array":
        yield from _number_nodes(schema.get("items", {}), root, (*path, 0))


def _schema_file(version: str, message_type: int, action: str) -> dict:
    """A schema as its file has it: the keywords OCPP wrote, not those validate() adds."""
    return json.loads(frames.schema_path(message_type, action, version).read_text(
        encoding="utf-8-sig"), parse_float=Decimal)


NUMBER_SCHEMAS = [(version, message_type, action)
                  for version in ("1.6", "2.0.1", "2.1")
                  for action in sorted(frames.known_actions(version))
                  for message_type in (frames.CALL, frames.CALLRESULT)
                  if frames.schema_path(message_type, action, version).is_file()
                  and any(_number_nodes(*[_schema_file(version, message_type, action)] * 2))]


def _same_number(value: Decimal) -> list[Any]:
    """One number as each type may hold it: an int (if whole), a float, a Decimal."""
    forms = [float(value), value]
    if value == value.to_integral_value():
        forms.append(int(value))
    return forms


@pytest.mark.parametrize(("version", "message_type", "action"), NUMBER_SCHEMAS,
                         ids=[f"{v}-{'req' if t == 2 else 'conf'}-{a}"
                              for v, t, a in NUMBER_SCHEMAS])
def test_every_number_keyword_takes_int_float_and_decimal_alike(version, message_type, action):
    """A number's verdict does not depend on its Python type, and no type makes a check raise
    anything but FrameError (a float against a Decimal multipleOf once raised TypeError)."""
    root = frames.reference_validator(message_type, action, version).schema
    example = json.loads(json.dumps(_example(root, root)), parse_float=Decimal)
    checked = 0
    for path, node in _number_nodes(*[_schema_file(version, message_type, action)] * 2):
        bounds = [Decimal(node.get("minimum", -(2**31))), Decimal(node.get("maximum", 2**31 - 1))]
        step = Decimal(str(node.get("multipleOf", 1)))
        # Off the step, whole (6.0, which a float and an int hold too), at and beyond a bound.
        values = {Decimal("21.45"), Decimal("6.0"), *bounds,
                  *(bound - step for bound in bounds[:1]), *(bound + step for bound in bounds[1:])}
        integer = "integer" in enforce_list(node.get("type", []))
        for value in values:
            verdicts = set()
            for number in _same_number(value):
                try:
                    frames.validate(message_type, action, _replaced(example, path, number),
                                    version)
                    verdict = "valid"
                except frames.FrameError as error:
                    verdict = error.kind
                checked += 1
                if integer and not isinstance(number, int):
                    assert verdict != "valid", (path, number)  # draft 4: ints only
                else:
                    verdicts.add(verdict)
            assert len(verdicts) <= 1, (path, value, verdicts)
    assert checked
