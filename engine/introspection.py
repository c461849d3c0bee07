"""What the admin API may ask of the partitions a process holds, without importing them.

``partitions`` implements it over its stores; the composition root hands it to the admin API.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

# The Restate release whose admin API and introspection tables Reprise follows: what ``GET /version``
# says, and ``sys_invocation.created_using_restate_version``.
RESTATE_VERSION = "1.7.12"


class Introspector(Protocol):
    def invocations(self, status: str | None, limit: int) -> list[dict[str, Any]]:
        """Summaries of invocations, optionally of one status, newest first."""
        ...

    def describe(self, invocation_id: str) -> dict[str, Any] | None:
        """One invocation with its journal decoded to readable form, or None if unknown here."""
        ...

    def pinned_counts(self) -> dict[str, int] | None:
        """Invocations not completed, per the deployment id they are pinned to; None unless this
        process holds every partition."""
        ...

    def state(self, service: str, key: str) -> dict[str, str]:
        """An object's or workflow's state (values as UTF-8 text where they are)."""
        ...

    def timers(self, limit: int) -> list[dict[str, Any]]:
        """Pending durable timers, soonest first."""
        ...

    def schedules(self) -> list[dict[str, Any]]:
        """Durable cron schedules, by id."""
        ...


@dataclass(frozen=True)
class Selection:
    """What a statement's filters let a scan skip: the partitions to read (None: all), and within
    them only these invocation ids or (service, key) objects (None: every row). Read off the
    statement's top-level equalities (ingress/sql_query.py); a table uses what it is keyed by."""

    partitions: frozenset[int] | None = None
    ids: frozenset[str] | None = None
    objects: frozenset[tuple[str, str]] | None = None

    def to_json(self) -> dict[str, Any]:
        return {"partitions": sorted(self.partitions) if self.partitions is not None else None,
                "ids": sorted(self.ids) if self.ids is not None else None,
                "objects": sorted(self.objects) if self.objects is not None else None}

    @staticmethod
    def from_json(raw: dict[str, Any]) -> Selection:
        def of(v: Any, item: Any) -> Any:
            return frozenset(item(x) for x in v) if v is not None else None
        return Selection(of(raw.get("partitions"), int), of(raw.get("ids"), str),
                         of(raw.get("objects"), lambda o: (str(o[0]), str(o[1]))))


class TableSource(Protocol):
    """Rows of the SQL introspection tables (engine/introspection_schema.py) from the partitions a process owns."""

    def owned(self) -> set[int]:
        """The partitions whose stores this process holds now."""
        ...

    def scan(self, table: str, partitions: set[int], max_rows: int, deadline: float,
             selection: Selection | None = None) -> Any:
        """One ``pyarrow.RecordBatch`` of ``table`` over ``partitions`` (each owned here; only the rows
        ``selection`` names when it names ids or objects), reading at most
        ``max_rows`` rows and stopping at ``deadline`` (time.monotonic()); raises
        ``reprise.engine.introspection.ScanRefused`` when it would go past either, or a partition is
        not owned here any more."""
        ...


class ScanRefused(Exception):
    """A scan that may not run or finish: past its row budget or deadline, or a partition owned elsewhere."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


class PartitionControl(Protocol):
    """What a processor's admin API may do to the partitions it owns."""

    def owned(self) -> list[dict[str, Any]]:
        """One row per owned partition: number, leading or not, applied offset, newest snapshot."""
        ...

    def snapshot(self, partition: int) -> dict[str, Any] | None:
        """Snapshot the partition now; None if this process does not own it."""
        ...


# Credentials a client, a caller or an operator sent: never shown by introspection or the admin API
# (the journal keeps them, since the handler receives them on every attempt; a deployment keeps its
# additional headers, since the invoker sends them on every request).
REDACTED_HEADERS = frozenset({"authorization", "proxy-authorization", "cookie", "set-cookie", "x-restate-jwt-v1",
                              "x-api-key", "api-key", "apikey", "x-auth-token", "x-access-token",
                              "x-amz-security-token", "x-goog-api-key"})
# ... and any header whose name says it carries one (x-my-service-token, x-client-secret, ...)
_CREDENTIAL_WORDS = ("token", "secret", "password", "passwd", "credential", "api-key", "apikey", "api_key",
                     "session", "signature", "auth")
REDACTED = "<redacted>"


def is_credential_header(name: str) -> bool:
    """True for a header whose value may be a credential, by its name (case-insensitive)."""
    lowered = name.lower()
    return lowered in REDACTED_HEADERS or any(word in lowered for word in _CREDENTIAL_WORDS)


def redact_header_map(headers: dict[str, str]) -> dict[str, str]:
    """``headers`` (name -> value) with the values of credential headers replaced."""
    return {k: REDACTED if is_credential_header(k) else v for k, v in headers.items()}


def redact_headers(value: Any) -> Any:
    """``value`` (a described invocation or journal entry) with the values of credential headers replaced.

    Headers appear as ``{"key": name, "value": ...}`` items of a ``headers`` list (Input, Call and
    OneWayCall entries); any such list, at any depth, is redacted.
    """
    if isinstance(value, dict):
        out = {}
        for k, v in value.items():
            if k == "headers" and isinstance(v, list):
                out[k] = [{**h, "value": REDACTED}
                          if isinstance(h, dict) and is_credential_header(str(h.get("key", "")))
                          else redact_headers(h) for h in v]
            else:
                out[k] = redact_headers(v)
        return out
    if isinstance(value, list):
        return [redact_headers(v) for v in value]
    return value
