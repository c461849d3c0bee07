"""Invoke a Reprise handler through Kafka, with nothing but confluent-kafka and fastavro.

    python examples/kafka/produce_invoke.py --service Counter --handler add --key c1 --input 1
    python examples/kafka/produce_invoke.py --service Greeter --handler greet --input '"Ada"' \
        --reply-topic reprise.replies.example

The record: the schemaless Avro body of schemas/command_invoke.v1.avsc on the topic
``<namespace>.commands``; no headers are needed, and any partition will do (the engine derives the
invocation id and routes the command to the log partition that owns its key; the object key as the
record key keeps one key's commands in order). With --reply-topic (an existing topic the operator
allows: by default ``<namespace>.replies.*``) the result, or the reason the engine refused the
command, comes back there as a Reply record (schemas/reply.v1.avsc) whose request_id is the
command's correlation id.
"""

from __future__ import annotations

import argparse
import io
import json
import time
import uuid
from pathlib import Path

import fastavro
from confluent_kafka import Consumer, Producer, TopicPartition

SCHEMAS = Path(__file__).resolve().parent.parent.parent / "schemas"


def load(name: str) -> dict:
    named: dict = {}
    for s in json.loads((SCHEMAS / "common.avsc").read_text()):
        fastavro.parse_schema(s, named_schemas=named)
    return fastavro.parse_schema(json.loads((SCHEMAS / name).read_text()), named_schemas=named)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--bootstrap", default="127.0.0.1:9092")
    ap.add_argument("--namespace", default="reprise")
    ap.add_argument("--service", required=True)
    ap.add_argument("--handler", required=True)
    ap.add_argument("--key", help="the object key or workflow id (none for a plain service)")
    ap.add_argument("--input", default="", help="the handler's input, e.g. JSON")
    ap.add_argument("--idempotency-key", help="the same key runs the handler once")
    ap.add_argument("--reply-topic", help="wait for the result on this (existing, allowed) topic")
    args = ap.parse_args()

    correlation_id = uuid.uuid4().hex
    command = {
        "service": args.service, "handler": args.handler, "key": args.key, "body": args.input.encode(),
        "headers": {"content-type": "application/json"}, "idempotency_key": args.idempotency_key,
        "reply_to": {"topic": args.reply_topic, "correlation_id": correlation_id} if args.reply_topic else None,
        "delay_ms": None,
    }
    body = io.BytesIO()
    fastavro.schemaless_writer(body, load("command_invoke.v1.avsc"), command)

    replies = None
    if args.reply_topic:  # subscribe before producing, at the topic's end, so the reply cannot be missed
        replies = Consumer({"bootstrap.servers": args.bootstrap, "group.id": f"example-{correlation_id}"})
        parts = replies.list_topics(args.reply_topic, timeout=10).topics[args.reply_topic].partitions
        replies.assign([TopicPartition(args.reply_topic, p, replies.get_watermark_offsets(
            TopicPartition(args.reply_topic, p), timeout=10)[1]) for p in parts])

    producer = Producer({"bootstrap.servers": args.bootstrap, "acks": "all"})
    producer.produce(f"{args.namespace}.commands", value=body.getvalue(),
                     key=args.key.encode() if args.key else None)
    assert producer.flush(30) == 0, "the command was not acknowledged"
    print(f"command {args.service}/{args.handler} acknowledged by Kafka")

    if replies is not None:
        schema = load("reply.v1.avsc")
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            for m in replies.consume(10, 0.5):
                if m.error() is None:
                    reply = fastavro.schemaless_reader(io.BytesIO(m.value()), schema, None)
                    if reply["request_id"] == correlation_id:
                        out = reply["failure"] or reply["value"].decode()
                        print(f"reply for {reply['invocation_id'] or 'a refused command'}: {out}")
                        return
        raise SystemExit("no reply within 60 s")


if __name__ == "__main__":
    main()
