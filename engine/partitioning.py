"""Routing a key to a partition of the log topic.

Reprise uses Kafka's own default partitioner: ``(murmur2(utf8(key)) & 0x7fffffff) % partitions``.
A producer in any language therefore routes a command by setting the record key to the partition
key (object key, workflow id, or any string for a plain service) and using its client's
murmur2 partitioner (Java's default; librdkafka's ``partitioner=murmur2_random``; kcat ``-p`` with an
explicit number computed by this function). The 31-bit hash is also the invocation id's partition
key, so the partition of any invocation can be read back from its id.
"""

from __future__ import annotations

import struct

_SEED = 0x9747B28C
_M = 0x5BD1E995
_MASK = 0xFFFFFFFF


def murmur2(data: bytes) -> int:
    """Kafka's murmur2 (``org.apache.kafka.common.utils.Utils.murmur2``) as an unsigned 32-bit int.
    The 4-byte words are read by struct in one call (half the time of indexing bytes for a 36-byte key)."""
    length = len(data)
    h = (_SEED ^ length) & _MASK
    n4 = length >> 2
    if n4:
        for k in _words(n4).unpack_from(data):
            k = (k * _M) & _MASK
            k ^= k >> 24
            h = ((h * _M) & _MASK) ^ ((k * _M) & _MASK)
    rest = length & 3
    tail = n4 * 4
    if rest == 3:
        h ^= data[tail + 2] << 16
    if rest >= 2:
        h ^= data[tail + 1] << 8
    if rest >= 1:
        h ^= data[tail]
        h = (h * _M) & _MASK
    h ^= h >> 13
    h = (h * _M) & _MASK
    h ^= h >> 15
    return h


_WORDS = [struct.Struct(f"<{n}I") for n in range(64)]  # little-endian words, as Kafka reads them


def _words(n: int) -> struct.Struct:
    return _WORDS[n] if n < 64 else struct.Struct(f"<{n}I")


def partition_key(key: str) -> int:
    """The 31-bit partition key of a routing key (Kafka's ``toPositive(murmur2(...))``)."""
    return murmur2(key.encode("utf-8")) & 0x7FFFFFFF


def partition_for_key(key: str, partitions: int) -> int:
    """The log partition that owns ``key``."""
    return partition_key(key) % partitions


def partition_of_pk(pk: int, partitions: int) -> int:
    """The log partition of a partition key taken from an invocation id."""
    return pk % partitions
