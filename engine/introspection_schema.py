"""The SQL introspection tables (``POST /query``): Restate's names, columns and Arrow types.

Taken from Restate 1.7's own server (``DESCRIBE <table>``), in its column order, so ``SELECT *``
and Restate's CLI read the same shape from either engine. ``sys_idempotency`` is the table older
Restate versions had (1.7 folds it into ``sys_invocation``); Reprise keeps it.
"""

from __future__ import annotations

from typing import Any

import pyarrow as pa

_S = pa.large_string()
_TS = pa.timestamp("ms", tz="+00:00")
_U32, _U64 = pa.uint32(), pa.uint64()

_INVOCATION_STATUS = [
    ("id", _S), ("vqueue_id", _S), ("status", _S), ("completion_result", _S), ("completion_failure", _S),
    ("target", _S), ("target_service_name", _S), ("target_service_key", _S), ("target_handler_name", _S),
    ("target_service_ty", _S), ("scope", _S), ("limit_key", _S), ("idempotency_key", _S), ("invoked_by", _S),
    ("invoked_by_id", _S), ("invoked_by_subscription_id", _S), ("invoked_by_service_name", _S),
    ("invoked_by_target", _S), ("restarted_from", _S), ("pinned_deployment_id", _S),
    ("pinned_service_protocol_version", _U32), ("trace_id", _S), ("journal_size", _U32),
    ("journal_commands_size", _U32), ("created_at", _TS), ("created_using_restate_version", _S),
    ("modified_at", _TS), ("inboxed_at", _TS), ("scheduled_at", _TS), ("scheduled_start_at", _TS),
    ("running_at", _TS), ("completed_at", _TS), ("completion_retention", pa.duration("ms")),
    ("journal_retention", pa.duration("ms")), ("suspended_waiting_for_completions", pa.list_(_U32)),
    ("suspended_waiting_for_signals", pa.list_(_U32)), ("suspended_waiting_future_json", _S),
]
_INVOCATION_STATE = [
    ("retry_count", _U64), ("last_start_at", _TS), ("next_retry_at", _TS), ("last_attempt_deployment_id", _S),
    ("last_attempt_server", _S), ("last_failure", _S), ("last_failure_error_code", _S),
    ("last_failure_related_entry_index", _U64), ("last_failure_related_entry_name", _S),
    ("last_failure_related_entry_type", _S), ("last_failure_related_command_index", _U64),
    ("last_failure_related_command_name", _S), ("last_failure_related_command_type", _S),
    ("last_awaiting_on_future_json", _S),
]
# sys_invocation is Restate's view over the two: its status columns (without partition_key), the
# state columns, then status and the completion again at the end, as Restate orders them.
_VIEW_HEAD = [c for c in _INVOCATION_STATUS if c[0] not in ("status", "completion_result", "completion_failure")]
_at = [name for name, _ in _VIEW_HEAD].index("invoked_by_id")  # the view names the caller's service first
_VIEW_HEAD[_at:_at + 3] = [_VIEW_HEAD[_at + 2], _VIEW_HEAD[_at], _VIEW_HEAD[_at + 1]]

_COLUMNS: dict[str, list[tuple[str, pa.DataType]]] = {
    "sys_invocation": _VIEW_HEAD + _INVOCATION_STATE + [("status", _S), ("completion_result", _S),
                                                         ("completion_failure", _S)],
    "sys_invocation_status": [("partition_key", _U64), *_INVOCATION_STATUS],
    "sys_journal": [
        ("partition_key", _U64), ("id", _S), ("index", _U32), ("entry_type", _S), ("name", _S),
        ("completed", pa.bool_()), ("invoked_id", _S), ("invoked_target", _S), ("sleep_wakeup_at", _TS),
        ("promise_name", _S), ("raw", pa.large_binary()), ("raw_length", _U64), ("version", _U32),
        ("entry_json", _S), ("entry_lite_json", _S), ("appended_at", _TS)],
    "state": [
        ("partition_key", _U64), ("scope", _S), ("service_name", _S), ("service_key", _S), ("key", _S),
        ("key_length", _U64), ("value_utf8", _S), ("value", pa.large_binary()), ("value_length", _U64)],
    "sys_inbox": [
        ("partition_key", _U64), ("service_name", _S), ("service_key", _S), ("id", _S),
        ("sequence_number", _U64), ("created_at", _TS)],
    "sys_keyed_service_status": [
        ("partition_key", _U64), ("service_name", _S), ("service_key", _S), ("invocation_id", _S)],
    "sys_idempotency": [
        ("partition_key", _U64), ("service_name", _S), ("service_key", _S), ("service_handler", _S),
        ("idempotency_key", _S), ("invocation_id", _S)],
    "sys_promise": [
        ("partition_key", _U64), ("scope", _S), ("service_name", _S), ("service_key", _S), ("key", _S),
        ("completed", pa.bool_()), ("completion_success_value", pa.large_binary()),
        ("completion_success_value_utf8", _S), ("completion_failure", _S)],
    "sys_service": [("name", _S), ("revision", _U64), ("public", pa.bool_()), ("ty", _S), ("deployment_id", _S)],
    "sys_deployment": [
        ("id", _S), ("ty", _S), ("endpoint", _S), ("created_at", _TS), ("min_service_protocol_version", _U32),
        ("max_service_protocol_version", _U32), ("services", pa.list_(_S))],
}
_NOT_NULL = {("sys_invocation", "status")}

SCHEMAS: dict[str, pa.Schema] = {
    table: pa.schema([pa.field(name, ty, nullable=(table, name) not in _NOT_NULL) for name, ty in cols])
    for table, cols in _COLUMNS.items()}

# Tables whose rows live in the partitions' stores (the rest come from the deployment registry)
PARTITIONED = frozenset(SCHEMAS) - {"sys_service", "sys_deployment"}


def batch(table: str, rows: list[dict[str, Any]]) -> pa.RecordBatch:
    """``rows`` (column name -> value; a missing column is null, one not in the table is left out) as
    one record batch of ``table``."""
    return pa.RecordBatch.from_pylist(rows, schema=SCHEMAS[table])  # columns built in C++: 6x a dict of lists
