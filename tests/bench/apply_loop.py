"""The apply loop alone: recorded batches through decode, apply() and one RocksDB WriteBatch each.

No broker: this measures the partition processor's core. Prints records/s.

    python tests/bench/apply_loop.py [--invocations 20000] [--batch 1000] [--repeat 3] [--in-flight 0] [--keys 0]
                                     [--python-gc]

``--in-flight N`` interleaves the invocations as a live processor sees them with N attempts running
(an invocation's effects arrive N/2 and N invocations after its Invoke), so that with small batches
an invocation's records fall into different batches; 0 keeps each invocation's records together.
The garbage collector runs as in a started engine (``engine/gc_policy.py``); ``--python-gc`` keeps
Python's defaults.

Each repetition starts from an empty store; it prints each rate and the best. A shared VM's speed
drifts by ±30% from minute to minute, so to compare two versions of the code count instructions
instead, which valgrind does deterministically (to ~0.1%): the loop's share is the difference
between a run with ``--repeat 1`` and one with ``--repeat 0`` (which only builds the records):

    valgrind --tool=callgrind --callgrind-out-file=/dev/null python tests/bench/apply_loop.py \
        --invocations 1000 --repeat 1     # then --repeat 0; "Collected" is the instruction count
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent.parent))

from reprise.deploy import native  # noqa: E402

native.activate()  # before the engine's modules: the compiled apply path where built
from reprise.engine import gc_policy  # noqa: E402
from reprise.engine.ids import InvocationId  # noqa: E402
from reprise.engine.partitioning import partition_for_key, partition_key  # noqa: E402
from reprise.engine.protocol import journal as pj  # noqa: E402
from reprise.engine.protocol import reprise_protocol_pb2 as pb  # noqa: E402
from reprise.engine.protocol.framing import encode_message  # noqa: E402
from reprise.partitions.core.apply import LogRecord, apply_batch  # noqa: E402
from reprise.partitions.core.transaction import Transaction  # noqa: E402
from reprise.partitions.state.rocks_store import RocksStore  # noqa: E402
from reprise.schemas import codec  # noqa: E402

PARTITIONS = 8


def recorded_log(invocations: int, partition: int = 0, keys: int = 0) -> list[tuple[str, bytes]]:
    """What a partition's log holds for ``invocations`` calls of a handler with one ctx.run step (their
    ids route to ``partition`` whatever the partition count above it: another partition would drop them).
    ``keys``: calls of a virtual object's exclusive handler spread over that many keys (each call
    queues in its key's inbox and is popped from it), else of a plain service. The keys route to
    ``partition`` and the ids carry their key's partition key, as the ingress writes them (apply()
    refuses a key routed elsewhere)."""
    log = [("LeaderEpoch", codec.encode("LeaderEpoch", {"partition": partition, "epoch": 1, "owner": "b",
                                                        "timestamp_ms": 0}))]
    run = encode_message(pb.RunCommandMessage(result_completion_id=1, name="step"))
    done = pj.run_completion_from_proposal(pb.ProposeRunCompletionMessage(result_completion_id=1,
                                                                          value=b'"x"').SerializeToString())
    out = encode_message(pb.OutputCommandMessage(value=pb.Value(content=b'"ok"')))
    reply = {"topic": "replies", "ingress_id": "bench", "request_id": "r"}
    names = [k for k in (f"k{i}" for i in range(100 * PARTITIONS * keys))
             if partition_for_key(k, PARTITIONS) == partition][:keys]
    for i in range(invocations):
        key = names[i % keys] if keys else None
        # partition key p: partition p (pk % partitions)
        inv = str(InvocationId(partition_key(key) if key else partition, i + 1))
        target = {"service": "O", "key": key, "handler_kind": "EXCLUSIVE"} if keys else {"service": "S"}
        log.append(("Invoke", codec.encode("Invoke", {"invocation_id": inv, "handler": "h", **target,
                                                      "input": b'"in"', "created_ms": 1, "reply_to": reply})))
        for attempt, entries, outcome in ((1, [run, done], {"completions": [1], "signals": [1], "named_signals": []}),
                                          (2, [out], {})):
            log.append(("InvokerEffects", codec.encode("InvokerEffects", {
                "invocation_id": inv, "attempt": attempt, "epoch": 1, "timestamp_ms": 2, "entries": entries,
                "outcome": outcome})))
        log.append(("OutboxShipped", codec.encode("OutboxShipped", {"epoch": 1, "up_to_seq": i})))
    return log


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--invocations", type=int, default=20_000)
    ap.add_argument("--batch", type=int, default=1000)
    ap.add_argument("--repeat", type=int, default=3, help="runs over a fresh store each (0: only build the log)")
    ap.add_argument("--in-flight", type=int, default=0, help="interleave invocations as if N ran at once")
    ap.add_argument("--keys", type=int, default=0, help="calls of a virtual object on this many keys (0: a service)")
    ap.add_argument("--python-gc", action="store_true",
                    help="keep Python's collector settings instead of the engine's (engine/gc_policy.py)")
    args = ap.parse_args()
    log = interleaved(recorded_log(args.invocations, keys=args.keys), args.in_flight)
    if not args.python_gc:
        gc_policy.settle()  # as a started engine process runs its processors
    compiled = native.activate()
    print(f"apply loop: {len(compiled)} of {len(native.MODULES)} apply-path modules compiled (deploy/native.py; "
          f"REPRISE_NATIVE=0 for none)")
    rates = []
    for _ in range(args.repeat):
        seconds = run_once(log, args.batch)
        rates.append(len(log) / seconds)
        print(f"apply loop: {len(log)} records ({args.invocations} invocations) in {seconds:.2f} s: "
              f"{rates[-1]:,.0f} records/s (decode + apply + WriteBatch, batches of {args.batch})", flush=True)
    if len(rates) > 1:
        print(f"apply loop: best of {len(rates)} {max(rates):,.0f} records/s")


def interleaved(log: list[tuple[str, bytes]], in_flight: int) -> list[tuple[str, bytes]]:
    """Invocation i's Invoke at step i, its first effects at i + N/2, its last effects and the outbox
    progress at i + N. The outbox still ships in completion order, so OutboxShipped(i) stays valid."""
    if not in_flight:
        return log
    head, rest = log[:1], log[1:]
    lag = (0, in_flight // 2, in_flight, in_flight)
    steps = sorted(((i // 4 + lag[i % 4], i % 4), record) for i, record in enumerate(rest))
    return head + [record for _, record in steps]


def run_once(log: list[tuple[str, bytes]], batch: int) -> float:
    """Seconds to decode, apply and write ``log`` into an empty store, ``batch`` records at a time."""
    with tempfile.TemporaryDirectory() as tmp:
        store = RocksStore(Path(tmp) / "p0")
        started = time.perf_counter()
        for start in range(0, len(log), batch):
            chunk = log[start:start + batch]
            records = [LogRecord(kind, 1, codec.decode(kind, 1, body), start + i, 1) for i, (kind, body) in
                       enumerate(chunk)]
            tx = Transaction(store)
            apply_batch(tx, 0, PARTITIONS, records)
            tx.commit(start + len(chunk) - 1)
        seconds = time.perf_counter() - started
        store.close()
    return seconds


if __name__ == "__main__":
    main()
