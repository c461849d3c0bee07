"""Three local KRaft nodes (each broker and controller) for replicated tests: replication factor 3,
``min.insync.replicas`` 2, so one node may die without losing an acknowledged record or availability.

Same jars and tools as ``local.py``; ports are consecutive from ``base_port`` (brokers) and
``base_port + 100`` (controllers). The quorum is static (``controller.quorum.voters``).
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from reprise.deploy.kafka.local import _HERE, LocalKafka, check_tools, wait_ready

NODE_TEMPLATE = """# Written by deploy/kafka/cluster.py: node {node} of a three-node KRaft cluster on loopback.
process.roles=broker,controller
node.id={node}
controller.quorum.voters={voters}
listeners=PLAINTEXT://127.0.0.1:{port},CONTROLLER://127.0.0.1:{controller_port}
advertised.listeners=PLAINTEXT://127.0.0.1:{port}
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT
log.dirs={data_dir}
num.partitions=1
auto.create.topics.enable=false
default.replication.factor=3
min.insync.replicas=2
unclean.leader.election.enable=false
offsets.topic.replication.factor=3
offsets.topic.num.partitions=4
transaction.state.log.replication.factor=3
transaction.state.log.min.isr=2
share.coordinator.state.topic.replication.factor=3
share.coordinator.state.topic.min.isr=2
group.initial.rebalance.delay.ms=0
group.min.session.timeout.ms=1000
# A node that stops heartbeating is fenced (its partitions get new leaders) after 4 s, not 9 s.
broker.session.timeout.ms=4000
broker.heartbeat.interval.ms=1000
message.max.bytes=8388608
replica.fetch.max.bytes=8388608
log.retention.hours=-1
"""


@dataclass
class ClusterNode(LocalKafka):
    node: int = 1
    voters: str = ""

    def _write_config(self) -> Path:
        props = self.dir / "server.properties"
        props.write_text(NODE_TEMPLATE.format(node=self.node, voters=self.voters, port=self.port,
                                              controller_port=self.controller_port,
                                              data_dir=self.data_dir.resolve()))
        return props

    def format(self, cluster_id: str) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        props = self._write_config()
        if (self.data_dir / "meta.properties").exists():
            return
        proc = subprocess.run(self._java("kafka.tools.StorageTool", "format", "-t", cluster_id, "-c", str(props)),
                              capture_output=True, text=True)
        if proc.returncode != 0:
            raise RuntimeError(f"formatting node {self.node} failed:\n{proc.stdout}{proc.stderr}")

    def launch(self) -> None:
        """Start the JVM without waiting: a node alone has no quorum to be ready with."""
        if self.is_running():
            return
        with open(self.log_file, "ab") as log:
            proc = subprocess.Popen(
                ["java", f"-Xmx{self.heap}", f"-Xms{self.heap}", "-XX:+UseSerialGC", "-Djava.awt.headless=true",
                 f"-Dlog4j2.configurationFile={_HERE / 'log4j2.properties'}",
                 f"-Dreprise.kafka.log={self.log_file.resolve()}", "-cp", f"{self.lib}/*", "kafka.Kafka",
                 str(self.dir / "server.properties")],
                stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)
        self.pid_file.write_text(str(proc.pid))

    def kill(self) -> None:
        """SIGKILL: a machine lost, no clean shutdown."""
        pid = self.pid()
        if pid is not None:
            os.kill(pid, signal.SIGKILL)
            while self.pid() is not None:
                time.sleep(0.05)


class LocalKafkaCluster:
    def __init__(self, home: Path, nodes: int = 3, base_port: int = 19492, heap: str = "256m") -> None:
        voters = ",".join(f"{n}@127.0.0.1:{base_port + 100 + n}" for n in range(1, nodes + 1))
        self.nodes = [ClusterNode(home=home / f"node{n}", port=base_port + n, controller_port=base_port + 100 + n,
                                  heap=heap, node=n, voters=voters) for n in range(1, nodes + 1)]

    @property
    def bootstrap(self) -> str:
        return ",".join(n.bootstrap for n in self.nodes)

    def start(self, timeout: float = 120.0) -> str:
        check_tools()
        first = self.nodes[0]
        first.resolve()
        cluster_id = subprocess.run(first._java("kafka.tools.StorageTool", "random-uuid"), capture_output=True,
                                    text=True, check=True).stdout.strip().splitlines()[-1]
        for n in self.nodes:
            n.format(cluster_id)
        for n in self.nodes:
            n.launch()
        deadline = time.monotonic() + timeout
        for n in self.nodes:
            wait_ready(n.bootstrap, max(1.0, deadline - time.monotonic()))
        return self.bootstrap

    def node(self, node_id: int) -> ClusterNode:
        return self.nodes[node_id - 1]

    def restart(self, node_id: int, timeout: float = 90.0) -> None:
        n = self.node(node_id)
        n.launch()
        wait_ready(n.bootstrap, timeout)

    def stop(self) -> None:
        for n in self.nodes:
            n.stop()
