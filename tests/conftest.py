"""Shared fixtures: one Kafka broker per test session, engines and services per test."""

from __future__ import annotations

import os
import re
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from confluent_kafka.admin import AdminClient

from tests.harness import Engine, Service, drop_namespace, engine_serving
from tests.restate_cli import install_cli

pytest_plugins = ["reprise.testing.plugin"]  # reprise.testing's fixtures, as its pytest11 entry point loads them


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--kafka-bootstrap", default=os.environ.get("REPRISE_TEST_KAFKA"),
                     help="use this Kafka cluster instead of the local broker")


def _reachable(bootstrap: str) -> bool:
    try:
        AdminClient({"bootstrap.servers": bootstrap}).list_topics(timeout=3)
        return True
    except Exception:  # noqa: BLE001
        return False


@pytest.fixture(scope="session")
def kafka_bootstrap(request: pytest.FixtureRequest) -> Iterator[str]:
    """The session's broker: the one named, the local one if it runs, else started here and stopped after."""
    named = request.config.getoption("--kafka-bootstrap")
    if named:
        yield named
        return
    if _reachable("127.0.0.1:9092"):
        yield "127.0.0.1:9092"
        return
    from reprise.deploy.kafka.local import LocalKafka

    kafka = LocalKafka(home=Path(".reprise"))
    yield kafka.start()
    kafka.stop()


# A test's namespace (``t<hex>``, ``tfuzz<hex>``...) or one derived from it (``<ns>-copy``).
_NAMESPACED = re.compile(r"t[a-z]*[0-9a-f]{8,}[.-]")


def _not_anothers(topic: str, own: str | None) -> bool:
    """False for a topic of another test's namespace: tests of several checkouts may share one broker,
    and one test's clean-up must not delete what another is still using. A test without a namespace
    fixture deletes no namespaced topic: whoever made one (a module's engine) deletes it."""
    if own is not None and topic.startswith((own + ".", own + "-")):
        return True
    return not _NAMESPACED.match(topic)


@pytest.fixture(autouse=True)
def _drop_topics_the_test_created(request: pytest.FixtureRequest) -> Iterator[None]:
    """Delete the topics a test created once it is done (its processes are gone by then: this fixture
    is set up first, so torn down last). A broker that keeps every test's namespace ends a session
    with thousands of partitions, and at that size its small heap spends its time in full GCs."""
    if "kafka_bootstrap" not in request.fixturenames:
        yield
        return
    admin = AdminClient({"bootstrap.servers": request.getfixturevalue("kafka_bootstrap")})
    own = request.getfixturevalue("namespace") if "namespace" in request.fixturenames else None
    before = set(admin.list_topics(timeout=30).topics)
    yield
    _delete_topics(admin, [t for t in admin.list_topics(timeout=30).topics
                           if t not in before and not t.startswith("__") and _not_anothers(t, own)])


def _delete_topics(admin: AdminClient, topics: list[str]) -> None:
    for fut in (admin.delete_topics(topics, operation_timeout=30) if topics else {}).values():
        try:
            fut.result(30)
        except Exception:  # noqa: BLE001 - already gone, or the test broke the broker: nothing to clean
            pass


@pytest.fixture
def namespace() -> str:
    return "t" + uuid.uuid4().hex[:10]


@pytest.fixture
def effects(tmp_path: Path) -> Path:
    d = tmp_path / "effects"
    d.mkdir()
    return d


@pytest.fixture
def service(tmp_path: Path, effects: Path) -> Iterator[Service]:
    svc = Service(effects, tmp_path / "service.log", env={"REPRISE_EXAMPLE_OUTBOX": str(effects)})
    try:
        svc.start()
        yield svc
    finally:
        svc.kill()


@pytest.fixture
def engine(kafka_bootstrap: str, namespace: str, tmp_path: Path, service: Service) -> Iterator[Engine]:
    """A running engine with the test service registered (over h2c)."""
    eng = Engine(kafka_bootstrap, namespace, tmp_path / "engine")
    try:  # a start or registration that fails leaves no engine running
        eng.start()
        eng.register(service.uri)
        yield eng
    finally:
        eng.kill()


@pytest.fixture(scope="module")
def module_effects(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("effects")


@pytest.fixture(scope="module")
def module_engine(kafka_bootstrap: str, tmp_path_factory: pytest.TempPathFactory,
                  module_effects: Path) -> Iterator[Engine]:
    """One engine with the test service registered (over h2c), shared by the tests of a module that
    ask for it: for tests independent of each other (keys and effect names of their own, nothing
    asserted about the namespace as a whole), where an engine each would cost only its start."""
    home, ns = tmp_path_factory.mktemp("module-engine"), "t" + uuid.uuid4().hex[:10]
    try:
        with engine_serving(kafka_bootstrap, ns, home, module_effects) as eng:
            yield eng
    finally:
        drop_namespace(kafka_bootstrap, ns)


@pytest.fixture
def own_engine(kafka_bootstrap: str, namespace: str, tmp_path: Path) -> Iterator[Engine]:
    """In a module whose tests share ``module_engine``: an engine, service and effects directory
    (``<tmp_path>/own-effects``) of the test's own, for a test that looks at more than its own keys."""
    mine = tmp_path / "own-effects"
    mine.mkdir()
    with engine_serving(kafka_bootstrap, namespace, tmp_path, mine) as eng:
        yield eng


@pytest.fixture
def latch_service(tmp_path: Path, effects: Path) -> Iterator[Service]:
    """The latch service (tests/services/latch_app.py): steps the test releases, executions it can tell apart."""
    svc = Service(effects, tmp_path / "latch-service.log", app="tests.services.latch_app:app")
    try:
        svc.start()
        yield svc
    finally:
        svc.kill()


@pytest.fixture(scope="module")
def cli_exe() -> Path:
    """Restate's CLI (tests/restate_cli.py), installed once; skipped only where npm cannot install it."""
    exe = install_cli()
    if exe is None:
        pytest.skip("npm could not install @restatedev/restate (no npm, or the registry is unreachable)")
    return exe
