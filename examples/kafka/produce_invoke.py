"""Invoke a Reprise handler straight through Kafka, with nothing but confluent-kafka and fastavro.

    python examples/kafka/produce_invoke.py --service Counter --handler add --key c1 --input 1
    python examples/kafka/produce_invoke.py --service Greeter --handler greet --input '"Ada"' --reply-topic my-replies

The record: the schemaless Avro body of schemas/invoke.v1.avsc, headers reprise-kind=Invoke and
reprise-version=1, the object key (or any string) as the Kafka key, and librdkafka's murmur2
partitioner (Kafka's Java default), which routes it to the partition that owns the key. With
--reply-topic the result comes back as a Reply record (schemas/reply.v1.avsc) on that topic.
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
    ap.add_argument("--reply-topic", help="wait for the result on this (existing) topic")
    args = ap.parse_args()

    request_id = uuid.uuid4().hex
    record = {
        "service": args.service, "handler": args.handler, "key": args.key, "input": args.input.encode(),
        "created_ms": int(time.time() * 1000),
        "reply_to": {"topic": args.reply_topic, "ingress_id": "example", "request_id": request_id}
        if args.reply_topic else None,
    }
    body = io.BytesIO()
    fastavro.schemaless_writer(body, load("invoke.v1.avsc"), record)

    replies = None
    if args.reply_topic:  # subscribe before producing, at the topic's end, so the reply cannot be missed
        replies = Consumer({"bootstrap.servers": args.bootstrap, "group.id": f"example-{request_id}"})
        parts = replies.list_topics(args.reply_topic, timeout=10).topics[args.reply_topic].partitions
        replies.assign([TopicPartition(args.reply_topic, p, replies.get_watermark_offsets(
            TopicPartition(args.reply_topic, p), timeout=10)[1]) for p in parts])

    producer = Producer({"bootstrap.servers": args.bootstrap, "acks": "all", "partitioner": "murmur2_random"})
    producer.produce(f"{args.namespace}.log", value=body.getvalue(), key=(args.key or request_id).encode(),
                     headers=[("reprise-kind", b"Invoke"), ("reprise-version", b"1")])
    assert producer.flush(30) == 0, "the Invoke was not acknowledged"
    print(f"Invoke {args.service}/{args.handler} acknowledged by Kafka")

    if replies is not None:
        schema = load("reply.v1.avsc")
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            for m in replies.consume(10, 0.5):
                if m.error() is None:
                    reply = fastavro.schemaless_reader(io.BytesIO(m.value()), schema, None)
                    if reply["request_id"] == request_id:
                        out = reply["failure"] or reply["value"].decode()
                        print(f"reply for {reply['invocation_id']}: {out}")
                        return
        raise SystemExit("no reply within 60 s")


if __name__ == "__main__":
    main()
