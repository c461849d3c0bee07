"""The compiled Avro codec against fastavro, the reference: same bytes out, same datums back."""

from __future__ import annotations

import io
import random
from typing import Any

import fastavro
import pytest

from reprise.schemas import codec
from reprise.schemas.avro_compiled import AvroError, compile_schema


def _named(schema: Any, named: dict[str, Any]) -> Any:
    return named[schema] if isinstance(schema, str) and schema in named else schema


def random_datum(schema: Any, named: dict[str, Any], rng: random.Random, depth: int = 0) -> Any:
    """A random datum of a parsed schema, with the edge values that break varints and lengths."""
    schema = _named(schema, named)
    if isinstance(schema, list):
        branch = rng.choice(schema) if depth < 4 else schema[0]
        return random_datum(branch, named, rng, depth + 1)
    kind = schema if isinstance(schema, str) else schema["type"]
    if isinstance(kind, (dict, list)) or kind in named:
        return random_datum(kind, named, rng, depth)
    if kind == "null":
        return None
    if kind == "boolean":
        return rng.random() < 0.5
    if kind == "int":
        return rng.choice([0, 1, -1, 63, 64, -64, -65, 2**31 - 1, -(2**31), rng.randint(-(2**31), 2**31 - 1)])
    if kind == "long":
        return rng.choice([0, -1, 127, 128, 1_700_000_000_000, 2**63 - 1, -(2**63), rng.randint(-(2**63), 2**63 - 1)])
    if kind in ("float", "double"):
        return rng.choice([0.0, 1.5, -2.25])
    if kind == "string":
        return rng.choice(["", "a", "ünïcødé ✓", "x" * rng.randint(60, 300)])
    if kind == "bytes":
        return bytes(rng.getrandbits(8) for _ in range(rng.choice([0, 1, 63, 64, 200])))
    if kind == "fixed":
        return bytes(rng.getrandbits(8) for _ in range(schema["size"]))
    if kind == "enum":
        return rng.choice(schema["symbols"])
    if kind == "array":
        return [random_datum(schema["items"], named, rng, depth + 1) for _ in range(rng.choice([0, 1, 3, 70]))]
    if kind == "map":
        return {f"k{i}": random_datum(schema["values"], named, rng, depth + 1) for i in range(rng.choice([0, 1, 5]))}
    if kind == "record":
        return {f["name"]: random_datum(f["type"], named, rng, depth + 1) for f in schema["fields"]}
    raise AssertionError(kind)


def fastavro_bytes(schema: Any, datum: Any) -> bytes:
    buf = io.BytesIO()
    fastavro.schemaless_writer(buf, schema, datum)
    return buf.getvalue()


EVERY_SCHEMA = {**codec.LOG_SCHEMAS, **codec.STORE_SCHEMAS, **codec.CHANGELOG_SCHEMAS, **codec.COMMAND_SCHEMAS}


def all_named() -> dict[str, Any]:
    named: dict[str, Any] = {}
    for key in EVERY_SCHEMA:
        parsed = codec.schema(*key)
        named.update(parsed.get("__named_schemas", {}))
    return named


@pytest.mark.parametrize("key", sorted(EVERY_SCHEMA))
def test_every_schema_writes_and_reads_what_fastavro_does(key: tuple[str, int]) -> None:
    schema, named = codec.schema(*key), all_named()
    encode, decode = compile_schema(schema, named)
    rng = random.Random(hash(key) & 0xFFFF)
    for _ in range(150):
        datum = random_datum(schema, named, rng)
        expected = fastavro_bytes(schema, datum)
        assert encode(datum) == expected
        read = fastavro.schemaless_reader(io.BytesIO(expected), schema, None)
        assert decode(expected) == read
        assert codec.decode(*key, expected) == read  # what the codec compiled at import, too
        if codec.CURRENT[key[0]] == key[1]:
            assert codec.encode(key[0], datum) == expected
        for cut in rng.sample(range(len(expected)), min(len(expected), 12)):  # a strict prefix is refused
            with pytest.raises(AvroError):
                decode(expected[:cut])


EVERYTHING = fastavro.parse_schema({
    "type": "record", "name": "t.Node", "fields": [
        {"name": "f", "type": "float"}, {"name": "d", "type": "double"},
        {"name": "e", "type": {"type": "enum", "name": "t.Colour", "symbols": ["RED", "GREEN"]}},
        {"name": "x", "type": {"type": "fixed", "name": "t.Four", "size": 4}},
        {"name": "m", "type": {"type": "map", "values": ["null", "long", "t.Colour"]}},
        {"name": "u", "type": ["null", "string", "bytes", "boolean", "double", "t.Four",
                               {"type": "array", "items": "int"}]},
        {"name": "next", "type": ["null", "t.Node"], "default": None},
    ]}, named_schemas={})


def test_the_types_our_schemas_do_not_use_yet_match_fastavro_too() -> None:
    encode, decode = compile_schema(EVERYTHING)
    tail = {"f": 0.5, "d": -1e300, "e": "GREEN", "x": b"abcd", "m": {}, "u": None}
    for u in (None, "s", b"b", True, 2.5, b"wxyz", [1, -2, 3]):
        datum = {"f": 1.5, "d": 2.0, "e": "RED", "x": b"\x00\x01\x02\x03",
                 "m": {"a": None, "b": 7, "c": "GREEN"}, "u": u, "next": dict(tail, next=None)}
        expected = fastavro_bytes(EVERYTHING, datum)
        assert encode(datum) == expected
        assert decode(expected) == fastavro.schemaless_reader(io.BytesIO(expected), EVERYTHING, None)


def test_blocks_with_a_byte_size_are_read() -> None:
    """Writers may give a block a negative count followed by its size in bytes (Avro spec)."""
    _, decode = compile_schema(fastavro.parse_schema({"type": "array", "items": "long"}))
    assert decode(bytes([3, 2, 2, 4, 0])) == [1, 2]  # count -2, size 2 bytes, items 1 and 2, end


def test_union_branches_named_by_tuple_or_picked_by_fields() -> None:
    schema = codec.schema("InvokerEffects", 2)
    encode, decode = compile_schema(schema, all_named())
    base = {"invocation_id": "i", "attempt": 1, "epoch": 1, "timestamp_ms": 1, "entries": []}
    for outcome, tagged in (({}, ("Ended", {})), ({"proposed": [1]}, ("reprise.log.Progress", {"proposed": [1]})),
                            ({"code": 1, "message": "m", "retryable": False},
                             ("AttemptFailed", {"code": 1, "message": "m", "retryable": False}))):
        plain, named = encode(dict(base, outcome=outcome)), encode(dict(base, outcome=tagged))
        assert plain == named == fastavro_bytes(schema, dict(base, outcome=outcome))
    with pytest.raises(AvroError, match="no union branch named"):
        encode(dict(base, outcome=("Nope", {})))
    with pytest.raises(AvroError, match="no record in the union"):
        encode(dict(base, outcome={"bogus": 1}))


def test_datums_that_do_not_fit_are_refused() -> None:
    encode, _ = compile_schema(codec.schema("Invoke"), all_named())
    for bad in ({"service": "S"}, {"service": 5, "handler": "h"}, {"service": "S", "handler": "h", "created_ms": "1"},
                {"service": "S", "handler": "h", "key": 5}, {"service": "S", "handler": "h", "input": "text"}):
        with pytest.raises((AvroError, TypeError, KeyError, AttributeError)):
            encode(bad)


def test_garbage_bodies_raise_avro_errors_only() -> None:
    _, decode = compile_schema(codec.schema("InvocationStatus"), all_named())
    rng = random.Random(7)
    for _ in range(3000):
        body = bytes(rng.getrandbits(8) for _ in range(rng.randint(0, 60)))
        try:
            decode(body)
        except AvroError:
            pass


def test_a_field_left_to_its_default_is_written_as_fastavro_writes_it() -> None:
    """Avro gives a bytes or fixed default as a JSON string of code points; the encoder writes those bytes
    (fastavro's own writer refuses such a datum, so it writes the defaults given explicitly)."""
    schema = fastavro.parse_schema({"type": "record", "name": "t.Defaults", "fields": [
        {"name": "body", "type": "bytes", "default": ""},
        {"name": "magic", "type": "bytes", "default": "\u00ff\u0001"},
        {"name": "tag", "type": {"type": "fixed", "name": "t.Tag", "size": 2}, "default": "ab"},
        {"name": "note", "type": ["null", "string"], "default": None},
        {"name": "n", "type": "long", "default": 7},
    ]}, named_schemas={})
    encode, decode = compile_schema(schema)
    defaults = {"body": b"", "magic": b"\xff\x01", "tag": b"ab", "note": None, "n": 7}
    expected = fastavro_bytes(schema, defaults)
    assert encode({}) == expected
    assert decode(expected) == defaults
