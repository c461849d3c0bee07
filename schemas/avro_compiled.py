"""Avro encoders and decoders compiled to Python source, one pair per schema.

Why: the partition processor encodes and decodes Avro for every log record and every stored row,
and fastavro's generic interpreter costs 15-20 µs per InvocationStatus row on our machines, most
of it per-call set-up and per-field dispatch. Specialising the code to each schema once, at
import, removes the dispatch: what is left is the byte work. The output is byte-for-byte what
fastavro writes (tests/unit/test_avro_compiled.py checks it against fastavro on random records of
every schema), so fastavro stays the reference: it parses the schemas and any other Avro reader
reads our records.

Covers what Avro 1.11 defines for schemaless bodies: null, boolean, int, long, float, double,
bytes, string, record, enum, array, map, fixed and unions (a union branch may be named with
fastavro's ``(name, value)`` tuple; an untagged dict picks the record whose fields fit it).
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from typing import Any

Encoder = Callable[[Any], bytes]
Decoder = Callable[[bytes], Any]
PRIMITIVES = ("null", "boolean", "int", "long", "float", "double", "bytes", "string")


class AvroError(ValueError):
    """A datum that does not fit its schema, or a body that is not a datum of it."""


_ONE_BYTE = tuple(bytes(((n << 1) ^ (n >> 63),)) for n in range(64)) + tuple(
    bytes((((n - 128) << 1) ^ -1,)) for n in range(64, 128))


_VARINT_ONE_BYTE = tuple(bytes((n,)) for n in range(128))


def varint(n: int) -> bytes:
    """An unsigned LEB128 varint: Avro's longs after zig-zag, protobuf's lengths and tags."""
    if n < 0x80:
        return _VARINT_ONE_BYTE[n]
    out = bytearray()
    while n >= 0x80:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def _long(n: int) -> bytes:
    """Zig-zag varint."""
    if -64 <= n < 64:
        return _ONE_BYTE[n]  # a negative n indexes the second half
    return varint((n << 1) ^ (n >> 63))


def _rl(b: bytes, p: int) -> tuple[int, int]:
    """Read a zig-zag varint at ``p``: (value, next position)."""
    c = b[p]
    p += 1
    if c < 0x80:
        return (c >> 1) ^ -(c & 1), p
    n = c & 0x7F
    shift = 7
    while True:
        c = b[p]
        p += 1
        n |= (c & 0x7F) << shift
        if c < 0x80:
            return (n >> 1) ^ -(n & 1), p
        shift += 7
        if shift > 70:
            raise AvroError("varint longer than 10 bytes")


def _rb(b: bytes, p: int) -> tuple[bytes, int]:
    n, p = _rl(b, p)
    end = p + n
    if n < 0 or end > len(b):
        raise AvroError(f"a {n}-byte value runs past the end of the body")
    return b[p:end], end


def _rs(b: bytes, p: int) -> tuple[str, int]:
    n, p = _rl(b, p)
    end = p + n
    if n < 0 or end > len(b):
        raise AvroError(f"a {n}-byte string runs past the end of the body")
    return b[p:end].decode(), end


def _rcount(b: bytes, p: int) -> tuple[int, int]:
    """An array or map block's item count (a negative count is followed by the block's size)."""
    n, p = _rl(b, p)
    if n < 0:
        n = -n
        _, p = _rl(b, p)
    if n > len(b):
        raise AvroError(f"a block of {n} items in a {len(b)}-byte body")
    return n, p


def _bad(why: str) -> None:
    raise AvroError(why)


def _pick(datum: Any, branches: tuple[tuple[frozenset, frozenset, int], ...]) -> int:
    """The union branch of an untagged dict: the record with exactly its keys, else the first whose
    required fields it has and whose fields cover its keys."""
    keys = datum.keys()
    for fields, _, i in branches:
        if keys == fields:
            return i
    for fields, required, i in branches:
        if required <= keys <= fields:
            return i
    raise AvroError(f"no record in the union has the fields {sorted(keys)}")


_RUNTIME = {"_long": _long, "_rl": _rl, "_rb": _rb, "_rs": _rs, "_rcount": _rcount, "_bad": _bad, "_pick": _pick,
            "_pf": struct.Struct("<f").pack, "_pd": struct.Struct("<d").pack,
            "_uf": struct.Struct("<f").unpack_from, "_ud": struct.Struct("<d").unpack_from}


class _Compiler:
    """Writes one module's worth of functions: ``e_<n>(buf, datum)`` and ``d_<n>(b, p)`` per named type."""

    def __init__(self, named: dict[str, Any]) -> None:
        self.named = named
        self.lines: list[str] = []
        self.consts: dict[str, Any] = {}
        self.funcs: dict[str, int] = {}  # full name -> function number
        self.counter = 0

    def var(self, prefix: str) -> str:
        self.counter += 1
        return f"{prefix}{self.counter}"

    def const(self, value: Any) -> str:
        name = self.var("c")
        self.consts[name] = value
        return name

    def default_value(self, schema: Any, default: Any) -> Any:
        """A field's default as the encoder takes it: Avro writes a bytes or fixed default as a JSON string
        whose code points are the bytes, and a union's default belongs to its first branch."""
        first = schema[0] if isinstance(schema, list) else schema
        kind = first if isinstance(first, str) else first.get("type")
        if kind in ("bytes", "fixed") and isinstance(default, str):
            return default.encode("latin-1")
        return default

    def resolve(self, schema: Any) -> Any:
        if isinstance(schema, dict) and "name" in schema:
            self.named.setdefault(schema["name"], schema)
        elif isinstance(schema, str) and schema not in PRIMITIVES:
            try:
                return self.named[schema]
            except KeyError:
                raise AvroError(f"unknown named type {schema!r}") from None
        if isinstance(schema, dict) and schema["type"] in PRIMITIVES:
            return schema["type"]
        return schema

    def kind(self, schema: Any) -> str:
        schema = self.resolve(schema)
        if isinstance(schema, list):
            return "union"
        return schema if isinstance(schema, str) else schema["type"]

    def record_function(self, schema: dict[str, Any]) -> int:
        """Compile a named record once (recursion-safe: the number is taken before the body)."""
        name = schema["name"]
        if name in self.funcs:
            return self.funcs[name]
        n = self.funcs[name] = len(self.funcs)
        self.named.setdefault(name, schema)
        enc, dec = [f"def e_{n}(buf, r):"], [f"def d_{n}(b, p):"]
        fields = []
        for field in schema["fields"]:
            x = self.var("x")
            if "default" in field:
                default = self.default_value(field["type"], field["default"])
                enc.append(f"    {x} = r.get({field['name']!r}, {self.const(default)})")
            else:
                enc.append(f"    {x} = r[{field['name']!r}]")
            self.encode(field["type"], x, enc, 1)
            y = self.var("y")
            self.decode(field["type"], y, dec, 1)
            fields.append(f"{field['name']!r}: {y}")
        if len(enc) == 1:
            enc.append("    pass")
        dec.append(f"    return {{{', '.join(fields)}}}, p")
        self.lines += enc + dec
        return n

    def encode(self, schema: Any, x: str, out: list[str], depth: int) -> None:
        pad = "    " * depth
        kind, schema = self.kind(schema), self.resolve(schema)
        if kind == "null":
            out.append(f"{pad}if {x} is not None: _bad('expected null, got ' + repr({x}))")
        elif kind == "boolean":
            out.append(f"{pad}buf += b'\\x01' if {x} else b'\\x00'")
        elif kind in ("int", "long"):  # 0..63, the common case, without a call
            out.append(f"{pad}if 0 <= {x} < 64: buf.append({x} << 1)\n{pad}else: buf += _long({x})")
        elif kind in ("float", "double"):
            out.append(f"{pad}buf += {'_pf' if kind == 'float' else '_pd'}({x})")
        elif kind == "string":
            s = self.var("s")
            out += [f"{pad}{s} = {x}.encode()"] + self.length(s, pad) + [f"{pad}buf += {s}"]
        elif kind == "bytes":
            out += self.length(x, pad) + [f"{pad}buf += {x}"]
        elif kind == "fixed":
            size = schema["size"]
            out += [f"{pad}if len({x}) != {size}: _bad('fixed {schema['name']} needs {size} bytes')",
                    f"{pad}buf += {x}"]
        elif kind == "enum":
            index = self.const({s: _long(i) for i, s in enumerate(schema["symbols"])})
            out.append(f"{pad}buf += {index}[{x}]")
        elif kind == "record":
            out.append(f"{pad}e_{self.record_function(schema)}(buf, {x})")
        elif kind in ("array", "map"):
            y = self.var("y")
            out += [f"{pad}if {x}:", f"{pad}    buf += _long(len({x}))"]
            if kind == "array":
                out.append(f"{pad}    for {y} in {x}:")
            else:
                k = self.var("k")
                out.append(f"{pad}    for {k}, {y} in {x}.items():")
                self.encode("string", k, out, depth + 2)
            self.encode(schema["items" if kind == "array" else "values"], y, out, depth + 2)
            out.append(f"{pad}buf.append(0)")
        elif kind == "union":
            self.encode_union(schema, x, out, depth)
        else:
            raise AvroError(f"unsupported Avro type {kind!r}")

    @staticmethod
    def length(x: str, pad: str) -> list[str]:
        return [f"{pad}if len({x}) < 64: buf.append(len({x}) << 1)", f"{pad}else: buf += _long(len({x}))"]

    _CHECKS = {"null": "{x} is None", "boolean": "isinstance({x}, bool)", "int": "isinstance({x}, int)",
               "long": "isinstance({x}, int)", "float": "isinstance({x}, (int, float))",
               "double": "isinstance({x}, (int, float))", "string": "isinstance({x}, str)",
               "bytes": "isinstance({x}, (bytes, bytearray))", "array": "isinstance({x}, (list, tuple))",
               "map": "isinstance({x}, dict)"}

    def encode_union(self, branches: list[Any], x: str, out: list[str], depth: int) -> None:
        pad = "    " * depth
        records = [(i, self.resolve(b)) for i, b in enumerate(branches) if self.kind(b) == "record"]
        others = [(i, b) for i, b in enumerate(branches) if self.kind(b) != "record"]
        if records:  # which record: fastavro's (name, datum) tuple names it, else the dict's keys
            names = {}
            for i, rec in records:
                names[rec["name"]] = names[rec["name"].rsplit(".", 1)[-1]] = i
            i_var = self.var("i")
            if len(records) > 1:
                fits = tuple((frozenset(f["name"] for f in rec["fields"]),
                              frozenset(f["name"] for f in rec["fields"] if "default" not in f), i)
                             for i, rec in records)
                untagged = f"_pick({x}, {self.const(fits)})"
            else:
                untagged = str(records[0][0])
            out += [f"{pad}if type({x}) is tuple:",
                    f"{pad}    {i_var} = {self.const(names)}.get({x}[0])",
                    f"{pad}    if {i_var} is None: _bad('no union branch named ' + repr({x}[0]))",
                    f"{pad}    {x} = {x}[1]",
                    f"{pad}elif isinstance({x}, dict): {i_var} = {untagged}",
                    f"{pad}else: {i_var} = -1"]
            for n, (i, rec) in enumerate(records):
                out += [f"{pad}{'if' if n == 0 else 'elif'} {i_var} == {i}:", f"{pad}    buf += {_long(i)!r}"]
                self.encode(rec, x, out, depth + 1)
            out.append(f"{pad}else:")
            depth += 1
            pad += "    "
        for n, (i, branch) in enumerate(others):
            kind = self.kind(branch)
            check = self._CHECKS.get(kind)
            if check is None:  # enum: one of its symbols; fixed: bytes of its size
                res = self.resolve(branch)
                check = (f"{{x}} in {self.const(frozenset(res['symbols']))}" if kind == "enum"
                         else f"isinstance({{x}}, bytes) and len({{x}}) == {res['size']}")
            out += [f"{pad}{'if' if n == 0 else 'elif'} {check.format(x=x)}:", f"{pad}    buf += {_long(i)!r}"]
            self.encode(branch, x, out, depth + 1)
        out.append(f"{pad}{'else: ' if others else ''}_bad('no union branch for ' + repr({x})[:80])")

    def decode(self, schema: Any, y: str, out: list[str], depth: int) -> None:
        pad = "    " * depth
        kind, schema = self.kind(schema), self.resolve(schema)
        if kind == "null":
            out.append(f"{pad}{y} = None")
        elif kind == "boolean":
            out += [f"{pad}{y} = b[p] != 0", f"{pad}p += 1"]
        elif kind in ("int", "long"):  # one-byte values inline, the rest in _rl
            out += [f"{pad}{y} = b[p]", f"{pad}if {y} < 0x80: {y} = ({y} >> 1) ^ -({y} & 1); p += 1",
                    f"{pad}else: {y}, p = _rl(b, p)"]
        elif kind in ("float", "double"):
            out += [f"{pad}{y} = {'_uf' if kind == 'float' else '_ud'}(b, p)[0]",
                    f"{pad}p += {4 if kind == 'float' else 8}"]
        elif kind in ("string", "bytes"):  # short lengths inline; an overrun ends past the body's end
            e = self.var("e")
            value = f"b[p + 1:{e}].decode()" if kind == "string" else f"b[p + 1:{e}]"
            out += [f"{pad}{e} = b[p]", f"{pad}if {e} < 0x80 and not {e} & 1: {e} = p + 1 + ({e} >> 1); "
                    f"{y} = {value}; p = {e}", f"{pad}else: {y}, p = {'_rs' if kind == 'string' else '_rb'}(b, p)"]
        elif kind == "fixed":
            out += [f"{pad}{y} = b[p:p + {schema['size']}]", f"{pad}p += {schema['size']}"]
        elif kind == "enum":
            i = self.var("i")
            symbols = self.const(tuple(schema["symbols"]))
            out += [f"{pad}{i}, p = _rl(b, p)",
                    f"{pad}if not 0 <= {i} < len({symbols}): _bad('enum index ' + str({i}))",
                    f"{pad}{y} = {symbols}[{i}]"]
        elif kind == "record":
            out.append(f"{pad}{y}, p = d_{self.record_function(schema)}(b, p)")
        elif kind in ("array", "map"):
            n, z = self.var("n"), self.var("z")
            out += [f"{pad}{y} = []" if kind == "array" else f"{pad}{y} = {{}}",
                    f"{pad}if b[p] == 0: p += 1",  # empty: one byte
                    f"{pad}else:", f"{pad}  while True:", f"{pad}    {n}, p = _rcount(b, p)",
                    f"{pad}    if not {n}: break", f"{pad}    for _ in range({n}):"]
            if kind == "map":
                k = self.var("k")
                out.append(f"{pad}        {k}, p = _rs(b, p)")
            self.decode(schema["items" if kind == "array" else "values"], z, out, depth + 2)
            out.append(f"{pad}        {y}.append({z})" if kind == "array" else f"{pad}        {y}[{k}] = {z}")
        elif kind == "union":
            if len(schema) > 64:
                raise AvroError(f"a union of {len(schema)} branches: at most 64 are supported")
            i = self.var("i")  # a valid index (< 64 branches) is one byte: 2 * index
            out += [f"{pad}{i} = b[p]", f"{pad}p += 1"]
            for j, branch in enumerate(schema):
                out.append(f"{pad}{'if' if j == 0 else 'elif'} {i} == {2 * j}:")
                self.decode(branch, y, out, depth + 1)
            out.append(f"{pad}else: _bad('union index byte ' + str({i}))")
        else:
            raise AvroError(f"unsupported Avro type {kind!r}")


def compile_schema(schema: Any, named: dict[str, Any] | None = None) -> tuple[Encoder, Decoder]:
    """(encode, decode) for a parsed schema (fastavro.parse_schema's output and its named types).

    ``encode(datum) -> bytes`` raises AvroError, TypeError, KeyError or AttributeError on a datum
    that does not fit; ``decode(body) -> datum`` raises AvroError on a body that is not one.
    """
    c = _Compiler({**(schema.get("__named_schemas", {}) if isinstance(schema, dict) else {}), **(named or {})})
    top_enc, top_dec = ["def encode(datum):", "    buf = bytearray()"], ["def decode_at(b, p):"]
    c.encode(schema, "datum", top_enc, 1)
    c.decode(schema, "datum", top_dec, 1)
    top_enc.append("    return bytes(buf)")
    top_dec.append("    return datum, p")
    source = "\n".join(c.lines + top_enc + top_dec) + "\n"
    scope: dict[str, Any] = {**_RUNTIME, **c.consts}
    exec(compile(source, f"<avro {schema.get('name', 'schema') if isinstance(schema, dict) else schema}>",
                 "exec"), scope)
    decode_at = scope["decode_at"]

    def decode(body: bytes) -> Any:
        try:
            datum, end = decode_at(body, 0)
        except (IndexError, UnicodeDecodeError, struct.error, RecursionError) as e:
            raise AvroError(f"malformed body: {e}") from e
        if end > len(body):
            raise AvroError("the body ends inside a value")
        return datum

    return scope["encode"], decode
