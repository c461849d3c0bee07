"""Invocation ids in Restate's format.

Raw form: 24 bytes, the u64 partition key big-endian followed by a 128-bit uuid. String form:
``inv_1`` + base62(partition key, 11 chars) + base62(uuid, 22 chars). SDKs treat ids as opaque, but
the TypeScript client insists on the ``inv`` prefix. Because the partition key is inside the id,
any process can route a record about an invocation without a lookup.
"""

from __future__ import annotations

import hashlib
import os
from collections import deque
from dataclasses import dataclass

from reprise.engine.partitioning import partition_key, partition_of_pk

_ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
_INDEX = {c: i for i, c in enumerate(_ALPHABET)}
# Written two digits at a time (5.9 -> 3.5 µs an id): the ingress writes one per request.
_PAIRS = tuple(a + b for a in _ALPHABET for b in _ALPHABET)
PREFIX = "inv_1"


def _b62(n: int, width: int) -> str:
    out = []
    if width % 2:
        n, r = divmod(n, 62)
        out.append(_ALPHABET[r])
    for _ in range(width // 2):
        n, r = divmod(n, 3844)
        out.append(_PAIRS[r])
    if n:
        raise ValueError("number too large for base62 width")
    return "".join(reversed(out))


def b62(n: int, width: int) -> str:
    """``n`` in Restate's base62, left-padded to ``width`` digits (ids of every kind use it)."""
    return _b62(n, width)


_RESOURCE_ALPHABET = "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"


def resource_id(prefix: str, n: int) -> str:
    """Restate's text of a resource id (deployment ``dp``, subscription ``sub``) whose u128 is ``n``:
    the prefix, ``_1``, and 22 base62 digits of the u128's big-endian bytes read as Restate's Rust
    does on a little-endian machine, in the alphabet Restate uses for them (lower case before upper).
    Restate's tools parse these ids; one written in the invocation ids' alphabet can fall outside a
    u128 for them."""
    swapped = int.from_bytes(n.to_bytes(16, "big"), "little")
    digits = []
    for _ in range(22):
        swapped, r = divmod(swapped, 62)
        digits.append(_RESOURCE_ALPHABET[r])
    return f"{prefix}_1" + "".join(reversed(digits))


def _unb62(s: str) -> int:  # one digit at a time: slicing pairs measured slower (5.3 vs 3.8 µs a parse)
    n = 0
    for c in s:
        n = n * 62 + _INDEX[c]
    return n


@dataclass(frozen=True, slots=True)
class InvocationId:
    """An invocation id: partition key plus uuid."""

    pk: int
    uuid: int

    def __str__(self) -> str:
        return PREFIX + _b62(self.pk, 11) + _b62(self.uuid, 22)

    def to_bytes(self) -> bytes:
        return self.pk.to_bytes(8, "big") + self.uuid.to_bytes(16, "big")

    def partition(self, partitions: int) -> int:
        return partition_of_pk(self.pk, partitions)

    def random_seed(self) -> int:
        """A stable u64 seed for ``ctx.random()``: the same on every attempt of the invocation."""
        return int.from_bytes(hashlib.sha256(self.to_bytes()).digest()[:8], "big")

    @staticmethod
    def parse(text: str) -> InvocationId:
        if len(text) != 38 or not text.startswith(PREFIX):
            raise ValueError(f"malformed invocation id {text!r}: expected 'inv_1' and 33 base62 chars")
        try:
            return InvocationId(_unb62(text[5:16]), _unb62(text[16:]))
        except KeyError:
            raise ValueError(f"malformed invocation id {text!r}: not base62") from None

    @staticmethod
    def from_bytes(raw: bytes) -> InvocationId:
        if len(raw) != 24:
            raise ValueError("raw invocation id must be 24 bytes")
        return InvocationId(int.from_bytes(raw[:8], "big"), int.from_bytes(raw[8:], "big"))

    @staticmethod
    def new(routing_key: str) -> InvocationId:
        """A fresh random id routed like ``routing_key``."""
        return InvocationId(partition_key(routing_key), random_bits(128))

    @staticmethod
    def random() -> InvocationId:
        """A fresh id for a plain-service invocation: a random 31-bit partition key (what hashing a
        random routing key would give, without murmur2 in Python on the ingress's hot path)."""
        return InvocationId(random_bits(32) & 0x7FFFFFFF, random_bits(128))

    @staticmethod
    def derived(routing_key: str, *parts: str | int) -> InvocationId:
        """A deterministic id: the same inputs always give the same id (used inside apply())."""
        h = hashlib.sha256("\x00".join(str(p) for p in parts).encode()).digest()
        return InvocationId(partition_key(routing_key), int.from_bytes(h[:16], "big"))


def parse_invocation_id(text: str) -> InvocationId:
    return InvocationId.parse(text)


# os.urandom (and uuid4, which calls it) drops the GIL for its syscall. On the event loop under load,
# the apply thread then holds the GIL until it blocks or its switch interval ends: measured here with a
# busy second thread, 106 µs of wall time for os.urandom(16) and 189 µs for uuid4 (0.3 µs for a draw from
# this pool). Ids therefore come from a pool of kernel randomness refilled 4 KiB (256 draws) at a time.
# deque.popleft is atomic, so threads never share a draw; a forked child starts with an empty pool.
_POOL: deque[int] = deque()
_POOL_DRAWS = 256
os.register_at_fork(after_in_child=_POOL.clear)


def random_bits(n: int) -> int:
    """``n`` (at most 128) random bits from the operating system's CSPRNG, via the pool."""
    while True:
        try:
            return _POOL.popleft() >> (128 - n)
        except IndexError:
            block = os.urandom(16 * _POOL_DRAWS)
            _POOL.extend(int.from_bytes(block[i:i + 16], "big") for i in range(0, len(block), 16))


def random_hex() -> str:
    """32 random hex digits (what ``uuid4().hex`` gave, without its syscall per call)."""
    return f"{random_bits(128):032x}"


def awakeable_id(invocation: InvocationId, signal_idx: int) -> str:
    """The SDK's awakeable id: ``sign_1`` + base64url(raw invocation id ‖ u32 signal index)."""
    import base64

    raw = invocation.to_bytes() + signal_idx.to_bytes(4, "big")
    return "sign_1" + base64.urlsafe_b64encode(raw).decode().rstrip("=")


def parse_awakeable_id(text: str) -> tuple[InvocationId, int]:
    """(invocation, signal index) of an awakeable id, or ValueError saying what is wrong."""
    import base64
    import binascii

    if not text.startswith("sign_1"):
        raise ValueError(f"malformed awakeable id {text!r}: expected the 'sign_1' prefix")
    body = text[6:]
    try:
        raw = base64.urlsafe_b64decode(body + "=" * (-len(body) % 4))
    except (binascii.Error, ValueError):
        raise ValueError(f"malformed awakeable id {text!r}: not base64url") from None
    if len(raw) != 28:
        raise ValueError(f"malformed awakeable id {text!r}: expected 28 bytes, found {len(raw)}")
    return InvocationId.from_bytes(raw[:24]), int.from_bytes(raw[24:], "big")


def idempotent_invocation_id(service: str, key: str | None, handler: str, idempotency_key: str) -> InvocationId:
    """The one invocation an idempotency key names, scoped to (service, key, handler).

    The ingress and calls from handlers derive it the same way, so both dedupe against each other.
    """
    parts = (service, key or "", handler, idempotency_key)
    return InvocationId.derived(key if key is not None else "/".join(parts), "idempotent", *parts)


def workflow_run_id(workflow: str, workflow_id: str) -> InvocationId:
    """A workflow's run has one id per workflow id: that is what makes it run once."""
    return InvocationId.derived(workflow_id, "wf", workflow, workflow_id)
