"""Why a record failed to apply: the record (reject it, always) or the process (retry the batch).

A replay must make the same decisions as the first pass. A record whose content makes apply() fail
fails the same way on every replay, so rejecting it (dead letter, partition moves on) is
deterministic. A failure of the process itself (out of memory, a RocksDB I/O error) may not happen
on a replay; rejecting the record then would make the replayed state differ. Such a failure aborts
the whole batch (nothing of it is committed) and the processor retries it; if it persists, the
processor stops loudly instead of rejecting anything (partitions/state/log_apply.py).
"""

from __future__ import annotations

from reprise.partitions.core.transaction import StoreIOError

# The process, not the record: memory, the operating system, the store's own errors.
_TRANSIENT_TYPES: tuple[type[BaseException], ...] = (MemoryError, OSError, SystemError, StoreIOError)


class TransientApplyError(Exception):
    """apply() failed for a reason outside the record: the batch is not committed and must be retried."""

    def __init__(self, offset: int, cause: BaseException) -> None:
        super().__init__(f"record at offset {offset} failed to apply for a transient reason: "
                         f"{type(cause).__name__}: {cause}")
        self.offset = offset
        self.cause = cause


def is_transient(exc: BaseException) -> bool:
    """True when the failure says nothing about the record. The RocksDB store raises its I/O and
    corruption errors as StoreIOError (rocksdict's bare ``Exception`` is wrapped where rocksdict is
    called, partitions/state/rocks_store.py); any other exception, a bare ``Exception`` of a bug included, is
    the record's and is rejected deterministically."""
    return isinstance(exc, _TRANSIENT_TYPES)

