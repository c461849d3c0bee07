"""Does a partition's store belong to the log it is about to follow?

A store is a function of its log up to its applied offset. If the log it follows is no longer that
log (the topic was deleted and recreated, a replica's tail was lost to an unclean leader election),
resuming after the applied offset would fold new records over another log's state: silent
divergence. So before a store is used:

* its applied offset must be below the log's end (a store ahead of its log has seen records the log
  no longer holds);
* the record the log holds at that offset must be the one the store applied last: the store keeps
  that record's timestamp beside its applied offset (``Transaction.commit``'s ``mark_ms``), and the
  log's record there must carry the same one. A record retention deleted cannot be checked.

Either failure refuses the partition with ``StoreAheadOfLog``, which says what to do: rebuild it.
"""

from __future__ import annotations

from pathlib import Path

from reprise.engine.config import Config
from reprise.engine.kafka import record_timestamp
from reprise.partitions.core.transaction import KeyValueStore, applied_mark, applied_offset


class StoreAheadOfLog(RuntimeError):
    """A store holds state its log does not imply (the log was recreated or lost its tail)."""


def _advice(cfg: Config, partition: int, path: Path, restored: bool) -> str:
    if restored:  # the store was empty or behind, and the changelog's deltas made it so
        return (f"It was restored from the changelog {cfg.changelog_topic}, whose deltas are another log's: "
                f"delete that topic (the engine creates it again and refills it), then rebuild with "
                f"`reprise partitions rebuild --partition {partition} --no-changelog`.")
    return (f"The store is not this log's state: rebuild it from the log with `reprise partitions rebuild "
            f"--partition {partition}` (or delete {path} and let the processor restore it), with the "
            f"processor stopped.")


def check_store_matches_log(cfg: Config, partition: int, store: KeyValueStore, path: Path,
                            log_start: int, log_end: int, restored: bool = False) -> None:
    """Raise ``StoreAheadOfLog`` unless ``store`` can resume on the log whose (first, end) offsets are
    ``log_start``, ``log_end``. Costs one fetch of one record when the store has a mark to compare.
    ``restored``: the store was just restored from the changelog (the advice differs)."""
    offset = applied_offset(store)
    if offset < 0:
        return
    if offset >= log_end:
        raise StoreAheadOfLog(
            f"partition {partition}: the store at {path} has applied up to offset {offset}, but the log "
            f"{cfg.log_topic} ends at offset {log_end} (its next record): the store is ahead of its log (was the "
            f"topic deleted and recreated, or a replica's tail lost?). {_advice(cfg, partition, path, restored)}")
    mark = applied_mark(store)
    if mark is None or offset < log_start:
        return  # no mark kept (an older store), or the record is gone: nothing to compare
    found = record_timestamp(cfg, cfg.log_topic, partition, offset)
    if found is not None and found != mark:
        raise StoreAheadOfLog(
            f"partition {partition}: the store at {path} applied offset {offset} from a record stamped {mark}, "
            f"but the log {cfg.log_topic} (ending at offset {log_end}) holds a record stamped {found} there: the "
            f"log is not the one the store followed (was the topic deleted and recreated, or a replica's tail "
            f"lost?). {_advice(cfg, partition, path, restored)}")


def check_store_matches_log_or_close(cfg: Config, partition: int, store: KeyValueStore, path: Path,
                                     log_start: int, log_end: int, restored: bool = False) -> None:
    """``check_store_matches_log``, closing ``store`` before a refusal propagates: the process opened
    it to own the partition, and a refused store must not stay open (its lock held) behind the error."""
    try:
        check_store_matches_log(cfg, partition, store, path, log_start, log_end, restored)
    except StoreAheadOfLog:
        store.close()
        raise
