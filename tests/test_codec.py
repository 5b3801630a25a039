"""The codec: every value made of ASGI's types survives encode -> JSON text -> decode exactly."""

from __future__ import annotations

import contextlib
import enum
import json
import math
from collections import OrderedDict, namedtuple
from importlib import resources
from typing import Any

import jsonschema
import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from asgispy.codec import jsonform
from asgispy.codec.jsonform import Opaque, bytes_text, decode, encode
from tests.apps.recording import assert_same

SCHEMA = json.loads(resources.files("asgispy.codec").joinpath("session.schema.json").read_text())
VALUE = jsonschema.Draft202012Validator({"$defs": SCHEMA["$defs"], "$ref": "#/$defs/value"})


def through_json(value: Any) -> Any:
    """Encode, write as JSON text, read back, decode: what a session file does to a value."""
    doc = encode(value)
    VALUE.validate(doc)
    return decode(orjson.loads(orjson.dumps(doc)))


# Text of every kind, including lone surrogates (a str can hold them; JSON text cannot).
texts = st.text(st.characters() | st.characters(min_codepoint=0xD800, max_codepoint=0xDFFF), max_size=12)
keys = (
    texts
    | st.sampled_from(["$bytes", "$tuple", "$object", "repr", "type", "$", "$headers"])
    | st.from_regex(r"\$[a-z]{0,6}", fullmatch=True)
)
leaves = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.integers(min_value=-(2**300), max_value=2**300),
    st.sampled_from([2**63 - 1, 2**63, -(2**63), -(2**63) - 1, 2**64]),
    st.floats(allow_nan=True, allow_infinity=True),
    texts,
    st.binary(max_size=40),
    st.sampled_from([b"", b"caf\xe9", b"\x00\x01", b"\xff\xfe", "é".encode(), b"\tline\r\n"]),
)
header_lists = st.lists(st.tuples(st.binary(max_size=12), st.binary(max_size=12)), min_size=1, max_size=5)
values = st.recursive(
    leaves | header_lists,
    lambda children: (
        st.lists(children, max_size=5)
        | st.tuples(children, children)
        | st.dictionaries(keys, children, max_size=5)
        | st.dictionaries(
            st.integers() | st.binary(max_size=4) | st.tuples(st.integers()), children, max_size=3
        )
    ),
    max_leaves=25,
)
messages = st.dictionaries(keys, values, max_size=8).map(lambda d: {"type": "x.y", **d})


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(messages)
def test_any_message_round_trips_exactly(message: dict[str, Any]) -> None:
    assert_same(through_json(message), message)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(header_lists)
def test_header_lists_round_trip_and_read_as_text(headers: list[tuple[bytes, bytes]]) -> None:
    doc = encode(headers)
    assert set(doc) == {"$headers"}
    for (name, value), (name_doc, value_doc) in zip(headers, doc["$headers"], strict=True):
        for raw, item in ((name, name_doc), (value, value_doc)):
            if bytes_text(raw) is not None:
                assert item == raw.decode()
    assert_same(through_json(headers), headers)


def test_bytes_and_str_stay_distinct_and_readable() -> None:
    message = {"type": "http.request", "body": b'{"a": 1}', "text": '{"a": 1}', "more_body": False}
    doc = encode(message)
    assert doc == {
        "type": "http.request",
        "body": {"$bytes": '{"a": 1}'},
        "text": '{"a": 1}',
        "more_body": False,
    }
    assert_same(through_json(message), message)


def test_each_bytes_form() -> None:
    assert encode(b"hello") == {"$bytes": "hello"}
    assert encode("café".encode("latin-1")) == {"$latin1": "café"}
    assert encode(bytes(range(256)))["$base64"].startswith("AAECAwQF")
    assert encode(b"a\x00b") == {"$base64": "YQBi"}  # decodes as UTF-8, but a NUL is not text


def test_headers_with_a_latin1_value() -> None:
    headers = [(b"content-type", b"text/plain"), (b"x-name", "José".encode("latin-1"))]
    assert encode(headers) == {"$headers": [["content-type", "text/plain"], ["x-name", {"$latin1": "José"}]]}
    assert_same(through_json(headers), headers)


def test_numbers_json_cannot_hold() -> None:
    assert encode(float("nan")) == {"$float": "nan"}
    assert encode(float("-inf")) == {"$float": "-inf"}
    assert encode(2**64) == {"$int": str(2**64)}
    assert encode(2**63 - 1) == 2**63 - 1
    value = through_json([float("nan"), float("inf"), -(2**100), -0.0])
    assert math.isnan(value[0]) and value[1] == math.inf and value[2] == -(2**100)
    assert math.copysign(1.0, value[3]) == -1.0


def test_strings_with_lone_surrogates_survive_json() -> None:
    value = {"path": "/caf\udce9", "ok": "plain", "k\ud800": 1}
    doc = encode(value)
    orjson.dumps(doc)  # orjson refuses lone surrogates in str; the codec must not hand it one
    assert doc["$dict"][1] == ["ok", "plain"]
    assert_same(through_json(value), value)


def test_keys_that_look_like_tags_are_not_mistaken_for_them() -> None:
    for value in ({"$bytes": "x"}, {"$object": "x", "repr": "y"}, {"$": 1}, {"$tuple": [1, 2]}):
        assert_same(through_json(value), value)


def test_dict_keys_of_other_types() -> None:
    value = {1: "one", b"raw": [None], (1, "a"): True, None: 2.5}
    assert_same(through_json(value), value)


class Colour(enum.Enum):
    RED = 1


class Status(enum.IntEnum):
    OK = 200


Point = namedtuple("Point", "x y")


class Unprintable:
    def __repr__(self) -> str:
        raise RuntimeError("no repr for you")


def test_subclasses_keep_their_value_as_the_base_type() -> None:
    value = {
        "status": Status.OK,
        "state": OrderedDict(a=1),
        "body": bytearray(b"\xff"),
        "view": memoryview(b"mv"),
        "client": Point("127.0.0.1", 80),
    }
    back = through_json(value)
    assert back == {
        "status": 200,
        "state": {"a": 1},
        "body": b"\xff",
        "view": b"mv",
        "client": ("127.0.0.1", 80),
    }
    assert type(back["status"]) is int and type(back["state"]) is dict and type(back["client"]) is tuple


def test_other_objects_come_back_opaque_with_their_type_and_repr() -> None:
    value = {"colour": Colour.RED, "fn": print, "broken": Unprintable(), "set": {1, 2}}
    back = through_json(value)
    assert back["colour"] == Opaque(f"{__name__}.Colour", "<Colour.RED: 1>")
    assert back["fn"] == Opaque("builtins.builtin_function_or_method", "<built-in function print>")
    assert back["broken"].type == f"{__name__}.Unprintable"
    assert "repr raised RuntimeError" in back["broken"].repr
    assert back["set"].type == "builtins.set"


def test_long_reprs_are_shortened() -> None:
    class Big:
        def __repr__(self) -> str:
            return "x" * 10_000

    back = through_json(Big())
    assert len(back.repr) == jsonform.MAX_REPR and back.repr.endswith("…")


def test_deep_nesting_and_cycles_do_not_crash() -> None:
    deep: Any = "bottom"
    for _ in range(100):
        deep = [deep]
    cyclic: dict[str, Any] = {"type": "x"}
    cyclic["self"] = cyclic
    for value in (deep, cyclic):
        doc = encode(value)
        orjson.dumps(doc)
        assert "$object" in json.dumps(doc)


@pytest.mark.parametrize(
    "doc",
    [
        {"$bytes": 3},
        {"$latin1": "€"},
        {"$base64": "not base64!"},
        {"$headers": [["a"]]},
        {"$headers": [[{"$bytes": "a", "$x": 1}, "b"]]},
        {"$dict": [[[1], 2]]},
        {"$float": "many"},
        {"$int": "1e5"},
        {"$str": "%%"},
        {"$unknown": 1},
        [{"$tuple": 5}],
    ],
)
def test_malformed_tags_raise_value_error(doc: Any) -> None:
    with pytest.raises(ValueError):
        decode(doc)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.recursive(
        st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=5),
        lambda children: (
            st.lists(children, max_size=3)
            | st.dictionaries(
                st.sampled_from(["$bytes", "$dict", "$headers", "$int", "a", "repr"]), children, max_size=2
            )
        ),
        max_leaves=10,
    )
)
def test_decode_of_any_json_returns_or_raises_value_error(doc: Any) -> None:
    with contextlib.suppress(ValueError):
        decode(doc)


@given(st.binary(max_size=600))
def test_the_model_measures_an_encoded_body_without_decoding_it(body: bytes) -> None:
    from asgispy.model.event import Event

    event = Event("send", 0.0, encode({"type": "http.response.body", "body": body}))
    assert event.payload_size == len(body)
