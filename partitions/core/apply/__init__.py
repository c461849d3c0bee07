"""apply(): the partition processor's pure core.

``apply_batch`` folds a batch of decoded log records into one store transaction and returns the
actions the leader must take. It reads no clock (a record's time is its Kafka timestamp, which is in
the log), draws no random numbers and does no I/O, so replaying a partition rebuilds the same state.
Each record kind has its own module; ``HANDLERS`` maps (kind, schema version) to it. Before its
handler runs, every record passes its kind's checks (``validation.VALIDATORS``): a record no engine
would write is rejected whole, with a kind of rejection that the processor counts.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, NamedTuple

from reprise.partitions.core.actions import Action
from reprise.partitions.core.apply import (
    admin_command,
    attach,
    call_completed,
    invoke,
    invoker_effects,
    leadership,
    retention_sweep,
    schedule,
    signal,
    state_mutation,
    timer_fired,
    validation_fast,
)
from reprise.partitions.core.apply_failures import TransientApplyError, is_transient
from reprise.partitions.core.context import ApplyContext
from reprise.partitions.core.errors import RejectedRecord, Rejection
from reprise.partitions.core.tables import Tables
from reprise.partitions.core.transaction import Transaction


class LogRecord(NamedTuple):
    """One decoded record of the log topic. (A NamedTuple: built once per record, it costs a third of
    a frozen dataclass, whose ``__init__`` goes through ``object.__setattr__`` per field.)"""

    kind: str
    version: int
    value: dict[str, Any]
    offset: int
    timestamp_ms: int


Handler = Callable[[ApplyContext, dict[str, Any], int], None]

HANDLERS: dict[tuple[str, int], Handler] = {
    ("Invoke", 1): invoke.apply_invoke,
    ("Invoke", 2): invoke.apply_invoke,  # v2 adds the sender of a one-way send
    ("InvokerEffects", 1): invoker_effects.apply_effects,
    ("InvokerEffects", 2): invoker_effects.apply_effects,  # v2 adds the Progress outcome
    ("InvokerEffects", 3): invoker_effects.apply_effects,  # v3 adds journal_retention_ms
    ("TimerFired", 1): timer_fired.apply_timer_fired,
    ("CallCompleted", 1): call_completed.apply_call_completed,
    ("LeaderEpoch", 1): leadership.apply_leader_epoch,
    ("LeaderEpoch", 2): leadership.apply_leader_epoch,  # v2 adds the claim its writer saw holding
    ("OutboxShipped", 1): leadership.apply_outbox_shipped,
    ("Signal", 1): signal.apply_signal,
    ("AdminCommand", 1): admin_command.apply_admin_command,
    ("AdminCommand", 2): admin_command.apply_admin_command,  # v2 adds restart-as-new's parameters
    ("Attach", 1): attach.apply_attach,
    ("RetentionSweep", 1): retention_sweep.apply_retention_sweep,
    ("ScheduleCommand", 1): schedule.apply_schedule_command,
    ("StateMutation", 1): state_mutation.apply_state_mutation,
}
# by kind: every version of a kind passes the same checks (validation.py's; validation_fast.py decides
# the common records in one pass and hands the rest to them)
VALIDATORS = validation_fast.VALIDATORS


class Rejected(NamedTuple):
    """A record apply() refused: for the dead-letter topic, the log and the metric."""

    offset: int
    kind: str
    reason: Rejection
    message: str


@dataclass
class BatchResult:
    actions: list[Action]
    dropped: list[str]
    rejected: list[Rejected]
    completed: list[tuple[int, str, str, str]]  # ApplyContext.completed: invocations the batch ended


def apply_batch(tx: Transaction, partition: int, partitions: int, records: Iterable[LogRecord]) -> BatchResult:
    """Apply records in order into ``tx`` (the caller commits it with the last offset).

    Raises TransientApplyError (``tx`` must then be dropped, not committed) when a record failed for
    a reason outside it, such as MemoryError or a RocksDB I/O error."""
    ctx = ApplyContext(Tables(tx), partition, partitions, -1)
    rejected: list[Rejected] = []
    for rec in records:
        ctx.offset = rec.offset
        handler = HANDLERS.get((rec.kind, rec.version))
        if handler is None:
            rejected.append(Rejected(rec.offset, rec.kind, Rejection.UNKNOWN_KIND,
                                     f"no handler for {rec.kind} v{rec.version} on the log topic"))
            continue
        tx.savepoint()
        n_actions = len(ctx.actions)
        try:
            VALIDATORS[rec.kind](ctx, rec.value)
            handler(ctx, rec.value, rec.timestamp_ms)
        except RejectedRecord as e:
            _undo(tx, ctx, n_actions)
            rejected.append(Rejected(rec.offset, rec.kind, e.reason,
                                     _fail_attempt_instead(tx, ctx, rec, str(e), e.reason)))
        except Exception as e:  # noqa: BLE001 - one bad record must not stop the partition
            if is_transient(e):  # the process failed, not the record: retry the batch (apply_failures.py)
                raise TransientApplyError(rec.offset, e) from e
            _undo(tx, ctx, n_actions)
            reason = f"{rec.kind} could not be applied: {type(e).__name__}: {e}"
            reason = _fail_attempt_instead(tx, ctx, rec, reason, Rejection.FAILED)
            rejected.append(Rejected(rec.offset, rec.kind, Rejection.FAILED, reason))
    return BatchResult(ctx.actions, ctx.dropped, rejected, ctx.completed)


def _undo(tx: Transaction, ctx: ApplyContext, n_actions: int) -> None:
    tx.rollback()
    ctx.tables.forget_reads()
    del ctx.actions[n_actions:]
    while ctx.completed and ctx.completed[-1][0] == ctx.offset:  # the record's completions are undone too
        ctx.completed.pop()


def _fail_attempt_instead(tx: Transaction, ctx: ApplyContext, rec: LogRecord, reason: str,
                          rejection: Rejection) -> str:
    """Refused effects fail their attempt (every attempt ends in the log): retried as a protocol
    violation, or, past a bound, terminally. Returns the reason to dead-letter."""
    if rec.kind != "InvokerEffects":
        return reason
    tx.savepoint()
    n_actions = len(ctx.actions)
    terminal = rejection is Rejection.TOO_LARGE
    try:
        if invoker_effects.fail_rejected(ctx, rec.value, reason, rec.timestamp_ms, terminal):
            return reason + (" (its invocation failed)" if terminal
                             else " (its attempt failed as a protocol violation, retried)")
    except Exception as e:  # noqa: BLE001 - the failure must not take the partition down either
        _undo(tx, ctx, n_actions)
        return reason + f" (failing its invocation failed too: {type(e).__name__}: {e})"
    return reason
