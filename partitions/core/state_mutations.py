"""Replacing a virtual object's state from outside (an operator's StateMutation), and ``sm/``: the
mutations waiting in a key's inbox.

A mutation for a key an exclusive invocation holds waits in the key's inbox, in arrival order with the
invocations there, as Restate does: a running handler never sees its state change under it, and an
invocation queued after the mutation sees it applied. Its inbox entry is a marker (``sm/`` and a
sequence) in place of an invocation id; the mutation itself is the row ``sm/<sequence>`` (a version
byte and the StateMutation's Avro body, without reply_to). ``lifecycle.release`` applies the markers it
pops before handing the key to the next invocation.
"""

from __future__ import annotations

from typing import Any

from reprise.engine.state_version import state_version
from reprise.partitions.core.tables import Tables
from reprise.schemas import codec

MARKER = "sm/"
_STORED_VERSION = b"\x01"


def replace_state(tables: Tables, service: str, key: str, version: str | None,
                  state: dict[str, bytes]) -> tuple[int, str]:
    """Replace the key's whole state unless ``version`` is given and is not its current version."""
    current = tables.state.all(service, key)
    if version is not None:
        found = state_version(current)
        if found != version:
            return 409, f"the state of {service}/{key} has version {found}, not the expected {version}"
    new = {name.encode(): value for name, value in state.items()}
    for name, _ in current:
        if name not in new:
            tables.state.clear(service, key, name)
    for name, value in sorted(new.items()):
        tables.state.set(service, key, name, value)
    return 202, "state replaced"


def enqueue(tables: Tables, rec: dict[str, Any]) -> None:
    """Queue the mutation in its key's inbox, behind what waits there already."""
    seq = int(tables.tx.get(b"meta/sm_next") or b"0")
    tables.tx.put(b"meta/sm_next", str(seq + 1).encode())
    marker = f"{MARKER}{seq:020d}"
    tables.tx.put(marker.encode(), _STORED_VERSION + codec.encode("StateMutation", {**rec, "reply_to": None}))
    tables.objects.push(rec["service"], rec["key"], marker)


def is_marker(entry: str) -> bool:
    return entry.startswith(MARKER)


def apply_queued(tables: Tables, marker: str) -> None:
    """Apply a mutation popped from its key's inbox. Its answer (202) was given when it was queued; one
    whose version no longer matches changes nothing, as in Restate."""
    raw = tables.tx.get(marker.encode())
    if raw is None:
        raise KeyError(f"inbox marker {marker}: no queued state mutation")
    tables.tx.delete(marker.encode())
    rec = codec.decode("StateMutation", raw[0], raw[1:])
    replace_state(tables, rec["service"], rec["key"], rec["version"], rec["state"])
