"""A key's state version, as Restate computes it: what ``POST /services/{s}/state`` compares.

Restate hashes the state canonically (entries sorted by name; per entry its index as 8 bytes
big-endian, 0x01, the name, 0x02, the value, 0x03) with SHA-256 and writes the digest in URL-safe
base64 without padding, so a version read from Restate's tools matches Reprise's for the same state.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Iterable


def state_version(entries: Iterable[tuple[bytes, bytes]]) -> str:
    """The version of a state given as (name, value) pairs, in any order."""
    h = hashlib.sha256()
    for i, (name, value) in enumerate(sorted(entries)):
        h.update(i.to_bytes(8, "big"))
        h.update(b"\x01")
        h.update(name)
        h.update(b"\x02")
        h.update(value)
        h.update(b"\x03")
    return base64.urlsafe_b64encode(h.digest()).rstrip(b"=").decode()
