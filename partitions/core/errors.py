"""Errors of the pure core."""

from __future__ import annotations

from enum import StrEnum


class Rejection(StrEnum):
    """Why a record was rejected: one short word per kind of fault, a metric label (bounded)."""

    UNDECODABLE = "undecodable"  # not Avro of its declared schema, or no schema headers
    UNKNOWN_KIND = "unknown_kind"  # a schema apply() has no handler for on the log
    MALFORMED = "malformed"  # a field's form: an invocation id, a timer key, a journal frame
    WRONG_PARTITION = "wrong_partition"  # an id or key that routes to another partition
    OUT_OF_RANGE = "out_of_range"  # a number the engine never writes: a negative index, an epoch leap
    TOO_LARGE = "too_large"  # a string or list past its bound
    UNKNOWN_VALUE = "unknown_value"  # an enum-like string outside its set
    INCONSISTENT = "inconsistent"  # contradicts the store: a completion the journal holds already
    FAILED = "failed"  # apply() raised: a record the checks let through but the handler could not use


class RejectedRecord(Exception):
    """A record that is well-formed Avro but makes no sense here (e.g. a malformed invocation id).

    apply() undoes whatever the record changed and the processor moves it to the dead-letter topic.
    ``reason`` says which kind of fault it is, for the metric; the message says what was expected
    and what was found.
    """

    def __init__(self, message: str, reason: Rejection = Rejection.MALFORMED) -> None:
        super().__init__(message)
        self.reason = reason
