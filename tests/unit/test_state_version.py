"""A key's state version (engine/state_version.py) against versions Restate 1.7.12 itself accepted.

Each vector was checked on a live Restate 1.7.12 server: the state was given to a key (by a virtual
object handler of restate-sdk 1.2.0, which stores JSON, or by ``POST /services/{s}/state`` for the
binary one), read back with ``POST /query`` (``state``), and then ``POST /services/{s}/state`` with
this version replaced the key's state, while the same request with a wrong version left it as it
was. Restate's CLI (``restate kv edit``, 1.7.12) sent the version of the ``two`` state itself.
"""

from __future__ import annotations

import pytest

from reprise.engine.state_version import state_version

VECTORS = [
    ("empty", {}, "47DEQpj8HBSa-_TImW-5JCeuQeRkm5NMpJWZG3hSuFU"),
    ("one", {b"a": b'"1"'}, "YTaJxN_pe-8PUDwbzflbzMj74aMLhcd4j4g6vmd2R3c"),
    ("two", {b"a": b'"1"', b"b": b'"hello"'}, "DPbP-tlH7FjoXlNvAWI24tUWXT32h9WarrRNuqlExyk"),
    ("order", {b"b": b'"x"', b"B": b'"y"', b"ab": b'"z"', b"a": b'"w"'},
     "BjSicbAETgUxwxDhFlPDDcMF7AH8kQTRSQI1_5JBi10"),
    ("utf8", {"é".encode(): b'"\\u00fc"', b"z": b'"\\u65e5\\u672c"'}, "sLY0RbDlEMR9Q8REZjFbOJiCuUgaxAJ6Z2mtyH9Ym78"),
    ("long", {b"counter": b"12345678901234", b"blob": b'"' + b"x" * 300 + b'"'},
     "DcBSKAxwr_TjBaCcvc5tm11TzPVLU1uYUNlKBlCtD1g"),
    ("empty_name", {b"": b'""', b"e": b'""'}, "oqaDSjxSn7zeuX2xCDtXEqQtiw8b08AdZgdDELXZRf4"),
    ("binary", {b"bin": bytes([0, 255, 128]), "näme".encode(): b"\x01"}, "GoDvhUqiHLMvT38Ziy3Ym_B-1T9d7hq09Vlo7ChtFfs"),
]


@pytest.mark.parametrize(("state", "version"), [(s, v) for _, s, v in VECTORS], ids=[n for n, _, _ in VECTORS])
def test_the_version_restate_accepted_for_the_state(state: dict[bytes, bytes], version: str) -> None:
    assert state_version(state.items()) == version
    assert state_version(reversed(list(state.items()))) == version  # the order given does not matter
