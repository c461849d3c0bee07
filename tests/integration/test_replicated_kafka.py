"""A replicated Kafka: three KRaft nodes, replication factor 3, min.insync.replicas 2. One node is
SIGKILLed under load: invocations go on, and no acknowledged invocation is lost or applied twice."""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
from confluent_kafka.admin import AdminClient, ConfigResource

from deploy.kafka.cluster import LocalKafkaCluster
from tests.harness import Engine, Service, call_json, post

pytestmark = pytest.mark.kafka
KEYS = [f"r{i}" for i in range(8)]


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalKafkaCluster]:
    c = LocalKafkaCluster(tmp_path_factory.mktemp("cluster"))
    c.start()
    yield c
    c.stop()


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
