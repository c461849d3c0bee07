from __future__ import annotations

import random

import pytest

from reprise.engine.ids import InvocationId
from reprise.engine.partitioning import murmur2, partition_for_key, partition_key


@pytest.mark.parametrize("data,signed", [
    # Kafka's own test vectors (UtilsTest.testMurmur2), as signed Java ints.
    (b"21", -973932308), (b"foobar", -790332482), (b"a-little-bit-long-string", -985981536),
    (b"a-little-bit-longer-string", -1486304829), (b"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8", -58897971),
    (b"abc", 479470107), (b"", 275646681),
])
def test_murmur2_matches_kafka(data: bytes, signed: int) -> None:
    assert murmur2(data) == signed & 0xFFFFFFFF


def _murmur2_bytewise(data: bytes) -> int:
    """Kafka's loop transcribed word by word from Java: what the struct-reading murmur2 must equal."""
    m, mask = 0x5BD1E995, 0xFFFFFFFF
    h = (0x9747B28C ^ len(data)) & mask
    n4 = len(data) // 4
    for i in range(n4):
        j = i * 4
        k = data[j] | (data[j + 1] << 8) | (data[j + 2] << 16) | (data[j + 3] << 24)
        k = (k * m) & mask
        k ^= k >> 24
        k = (k * m) & mask
        h = (h * m) & mask
        h ^= k
    rest, tail = len(data) & 3, n4 * 4
    if rest == 3:
        h ^= data[tail + 2] << 16
    if rest >= 2:
        h ^= data[tail + 1] << 8
    if rest >= 1:
        h ^= data[tail]
        h = (h * m) & mask
    h ^= h >> 13
    h = (h * m) & mask
    return h ^ (h >> 15)


def test_murmur2_agrees_with_kafkas_loop_at_every_length() -> None:
    rng = random.Random(5)
    for n in [*range(300), 1_000, 4_099]:  # every tail length, and past the precompiled word counts
        data = bytes(rng.randrange(256) for _ in range(n))
        assert murmur2(data) == _murmur2_bytewise(data), n


def test_partition_is_positive_hash_mod_count() -> None:
    assert partition_key("21") == (-973932308 & 0x7FFFFFFF)
    assert partition_for_key("21", 8) == (-973932308 & 0x7FFFFFFF) % 8


def test_invocation_id_round_trip_and_routing() -> None:
    iid = InvocationId.new("cart-42")
    text = str(iid)
    assert text.startswith("inv_1") and len(text) == 38
    assert InvocationId.parse(text) == iid
    assert InvocationId.from_bytes(iid.to_bytes()) == iid
    assert iid.partition(8) == partition_for_key("cart-42", 8)


def test_random_ids_are_distinct_round_trip_and_spread_over_partitions() -> None:
    ids = [InvocationId.random() for _ in range(2000)]
    assert len(set(ids)) == len(ids)
    assert all(0 <= i.pk <= 0x7FFFFFFF and InvocationId.parse(str(i)) == i for i in ids)
    per_partition = [sum(1 for i in ids if i.partition(8) == p) for p in range(8)]
    assert min(per_partition) > 150  # 250 expected each; a fixed or biased key would leave some empty


def test_derived_ids_are_deterministic_and_seed_is_stable() -> None:
    a = InvocationId.derived("k", "call", "inv_parent", 3)
    assert a == InvocationId.derived("k", "call", "inv_parent", 3)
    assert a != InvocationId.derived("k", "call", "inv_parent", 4)
    assert a.random_seed() == InvocationId.parse(str(a)).random_seed()


@pytest.mark.parametrize("bad", ["", "inv_1", "xyz_1" + "0" * 33, "inv_1" + "!" * 33])
def test_malformed_ids_are_rejected(bad: str) -> None:
    with pytest.raises(ValueError):
        InvocationId.parse(bad)


def test_random_draws_are_distinct_in_range_and_not_inherited_by_a_forked_child() -> None:
    import os

    from reprise.engine import ids

    draws = [ids.random_bits(128) for _ in range(3 * ids._POOL_DRAWS)]  # crosses two refills
    assert len(set(draws)) == len(draws) and all(0 <= d < 2**128 for d in draws)
    assert all(0 <= ids.random_bits(32) < 2**32 for _ in range(100))
    assert len(ids.random_hex()) == 32 and int(ids.random_hex(), 16) >= 0
    ids.random_bits(128)  # the pool now holds draws a child must not repeat
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.write(write, ids.random_bits(128).to_bytes(16, "big"))
        os._exit(0)
    os.waitpid(pid, 0)
    child = int.from_bytes(os.read(read, 16), "big")
    assert child != ids.random_bits(128)  # the parent's next draw
