"""A replicated Kafka: three KRaft nodes, replication factor 3, min.insync.replicas 2. One node is
SIGKILLed under load: invocations go on, and no acknowledged invocation is lost or applied twice.
And the partition leader SIGKILLed right after it acknowledged sends its followers did not have yet:
each acknowledged send must still complete (it does because the ingress produces with acks=all;
with acks=1 the sends are lost)."""

from __future__ import annotations

import json
import os
import signal
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
from confluent_kafka.admin import AdminClient, ConfigResource

from reprise.deploy.kafka.cluster import LocalKafkaCluster
from tests.harness import Background, Engine, Service, call_json, post, request

pytestmark = pytest.mark.kafka
KEYS = [f"r{i}" for i in range(8)]


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalKafkaCluster]:
    c = LocalKafkaCluster(tmp_path_factory.mktemp("cluster"))
    c.start()
    yield c
    for n in c.nodes:  # a throwaway cluster: a clean stop only waits (the last node for a quorum already gone)
        n.kill()


class Load:
    """Clients adding 1 to counters, each add with an idempotency key and retried until acknowledged."""

    def __init__(self, eng: Engine, clients: int = 4) -> None:
        self.eng, self.stop = eng, threading.Event()
        self.acked: Counter[str] = Counter()
        self.acked_at: list[float] = []
        self.unacknowledged = 0
        self.lock = threading.Lock()
        self.threads = [threading.Thread(target=self._run, args=(i,), daemon=True) for i in range(clients)]

    def _run(self, client: int) -> None:
        n = 0
        while not self.stop.is_set():
            key, op = KEYS[(client + n) % len(KEYS)], f"c{client}-{n}"
            while True:  # an unacknowledged add is retried with its key: it happens once either way
                status, _ = post(f"{self.eng.ingress}/Counter/{key}/add", b"1", {
                    "content-type": "application/json", "idempotency-key": op}, timeout=60)
                if status == 200:
                    break
                with self.lock:
                    self.unacknowledged += 1
                time.sleep(0.1)
            with self.lock:
                self.acked[key] += 1
                self.acked_at.append(time.monotonic())
            n += 1

    def __enter__(self) -> Load:
        for t in self.threads:
            t.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.stop.set()
        for t in self.threads:
            t.join(120)


def log_leaders(bootstrap: str, topic: str) -> Counter[int]:
    md = AdminClient({"bootstrap.servers": bootstrap}).list_topics(topic, timeout=10)
    return Counter(p.leader for p in md.topics[topic].partitions.values())


def test_a_node_killed_under_load_loses_no_acknowledged_invocation(
        cluster: LocalKafkaCluster, namespace: str, tmp_path: Path, service: Service) -> None:
    eng = Engine(cluster.bootstrap, namespace, tmp_path / "engine", env={
        "REPRISE_REPLICATION_FACTOR": "3", "REPRISE_PRODUCE_TIMEOUT_MS": "20000"})
    eng.start(120)
    try:
        eng.register(service.uri)
        admin = AdminClient({"bootstrap.servers": cluster.bootstrap})
        topic = f"{namespace}.log"
        md = admin.list_topics(topic, timeout=10).topics[topic]
        assert all(len(p.replicas) == 3 for p in md.partitions.values())
        resource = ConfigResource(ConfigResource.Type.TOPIC, topic)
        assert admin.describe_configs([resource])[resource].result(10)["min.insync.replicas"].value == "2"

        with Load(eng) as load:
            time.sleep(3)
            victim = log_leaders(cluster.bootstrap, topic).most_common(1)[0][0]  # leads the most log partitions
            cluster.node(victim).kill()
            killed_at = time.monotonic()
            time.sleep(12)  # the controller fences the dead node after broker.session.timeout.ms (4 s)
            acked_while_down = sum(1 for t in load.acked_at if t > killed_at + 1)
            cluster.restart(victim)
            time.sleep(2)
        assert acked_while_down > 0, "nothing was acknowledged with one node of three down"
        for key in KEYS:  # every acknowledged add applied exactly once
            assert call_json(eng, f"/Counter/{key}/get") == (200, load.acked[key]), key
        print(f"acknowledged {sum(load.acked.values())} adds, {acked_while_down} with node {victim} down; "
              f"{load.unacknowledged} answers were not 200 and were retried")
    finally:
        eng.kill()


def send(eng: Engine, key: str, timeout: float, idempotency_key: str | None = None) -> tuple[int, str | None]:
    """A one-way add of 1 to ``key``; its status and invocation id. Without an idempotency key the 202
    answers Kafka's acknowledgement alone (with one, the ingress waits for the partition too)."""
    headers = {"content-type": "application/json"}
    if idempotency_key is not None:
        headers["idempotency-key"] = idempotency_key
    try:
        status, _, body = request(f"{eng.ingress}/Counter/{key}/add/send", b"1", headers, timeout=timeout)
    except OSError:
        return 0, None  # no answer in time: not acknowledged
    return status, json.loads(body)["invocationId"] if status == 202 else None


def test_sends_acknowledged_just_before_the_leader_dies_all_complete(
        cluster: LocalKafkaCluster, namespace: str, tmp_path: Path, service: Service) -> None:
    """The followers are frozen (SIGSTOP), sends are made, the leader is SIGKILLed at once after, the
    followers resume and one of them leads. Under acks=all nothing is acknowledged while the followers
    are frozen, so nothing acknowledged is lost; under acks=1 the leader acknowledges records no
    follower has, and the new leader never had them."""
    eng = Engine(cluster.bootstrap, namespace, tmp_path / "engine", partitions=1, env={
        "REPRISE_REPLICATION_FACTOR": "3", "REPRISE_PRODUCE_TIMEOUT_MS": "4000"})
    eng.start(120)
    keys = [f"k{i}" for i in range(4)]
    frozen: list[int] = []
    try:
        eng.register(service.uri)
        topic = f"{namespace}.log"
        [leader] = log_leaders(cluster.bootstrap, topic)
        followers = [n for n in cluster.nodes if n.node != leader]
        for n in followers:
            frozen.append(n.pid())
            os.kill(frozen[-1], signal.SIGSTOP)
        pending = [Background(send, eng, key, 15) for key in keys]
        answers = dict(zip(keys, (p.result(60) for p in pending), strict=True))
        cluster.node(leader).kill()  # right after the acknowledgements (or after the ingress gave up)
        for pid in frozen:
            os.kill(pid, signal.SIGCONT)
        frozen.clear()
        acknowledged = {key: inv for key, (status, inv) in answers.items() if status == 202}
        cluster.restart(leader)

        for key in keys:  # a careful client: what was not acknowledged is sent again, now with a key
            deadline = time.monotonic() + 120
            while key not in acknowledged:
                status, inv = send(eng, key, 30, f"retry-{key}")
                if status == 202:
                    acknowledged[key] = inv
                assert time.monotonic() < deadline, f"{key} never acknowledged"
                time.sleep(0.5)
        lost = []
        for key in keys:  # every acknowledged send, looked up by the id its 202 carried
            status, out = call_json(eng, f"/restate/invocation/{acknowledged[key]}/attach", timeout=120)
            if status != 200:
                lost.append((key, answers[key], status, out))
        assert lost == [], f"acknowledged sends lost (key, first answer, attach status, body): {lost}"
        for key in keys:  # acknowledged the first time: once; else the first may have landed too
            status, value = call_json(eng, f"/Counter/{key}/get")
            assert status == 200 and value in ((1,) if answers[key][0] == 202 else (1, 2)), (key, value)
        print(f"first answers: {answers}")
    finally:
        for pid in frozen:
            os.kill(pid, signal.SIGCONT)
        eng.kill()
