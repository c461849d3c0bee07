"""Deployment and subscription ids parse as Restate's tools parse them (its CLI describes a deployment
by id): ``<prefix>_1`` + 22 base62 digits, lower case before upper, of a u128's big-endian bytes as a
little-endian machine reads them; a value past 128 bits is refused ("base62 decode error")."""

from __future__ import annotations

import json
import random

import pytest

from reprise.engine.config import Config
from reprise.engine.discovery import deployment_id
from reprise.engine.ids import resource_id
from reprise.engine.registry import Registry
from reprise.engine.subscriptions import subscription_id

ALPHABET = "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"


def restate_parse(text: str, prefix: str) -> int:
    """What Restate's resource id parser does with ``text``: the u128 it names, or ValueError."""
    head, _, body = text.partition("_")
    if head != prefix or len(body) != 23 or body[0] != "1":
        raise ValueError(f"not a {prefix} id: {text}")
    n = 0
    for c in body[1:]:
        n = n * 62 + ALPHABET.index(c)
    if n >= 2**128:
        raise ValueError("base62 decode error")
    return int.from_bytes(n.to_bytes(16, "little"), "big")


def test_the_address_whose_id_restates_cli_refused_parses() -> None:
    restate_parse(deployment_id("http://127.0.0.1:60681"), "dp")


@pytest.mark.parametrize("n", [0, 1, 2**64, 2**127 + 12345, 2**128 - 1])
def test_an_id_names_its_u128(n: int) -> None:
    assert restate_parse(resource_id("dp", n), "dp") == n


def test_every_derived_id_parses() -> None:
    rnd = random.Random(7)
    for _ in range(3000):
        port = rnd.randrange(1024, 65536)
        restate_parse(deployment_id(f"http://127.0.0.1:{port}"), "dp")
        restate_parse(subscription_id(f"topic{port}", "Svc", "handle"), "sub")


def test_a_deployment_registered_under_an_older_id_form_keeps_it() -> None:
    """Invocations are pinned to a deployment's id: registering its address again must not rename it."""
    reg = Registry(Config())
    old_id = "dp_17O0O8NdLFwWNyxXoy6Daqx"  # an id of the earlier form, as stored
    manifest = {"protocolMode": "BIDI_STREAM", "minProtocolVersion": 5, "maxProtocolVersion": 6, "services": []}
    reg._on_record(b"", {"id": old_id, "uri": "http://127.0.0.1:60681", "use_http_11": False,
                         "additional_headers": {}, "manifest_json": json.dumps(manifest), "created_ms": 1})
    assert reg.id_for_uri("http://127.0.0.1:60681") == old_id
    assert reg.id_for_uri("http://127.0.0.1:60682") == deployment_id("http://127.0.0.1:60682")
