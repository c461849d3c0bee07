"""The pytest plugin of ``reprise.testing``: fixtures that start an engine with your app embedded.

Registered through the ``pytest11`` entry point when reprise is installed, and inert unless a test
asks for one of its fixtures: importing it starts nothing and imports no Kafka client. docs/testing.md.

* ``reprise_app`` (module): the app to embed, ``module:attribute``. Override it in a conftest or a
  test module, or set ``reprise_app`` in the pytest ini options.
* ``reprise_engine_env`` (module): extra environment of the engine process (default none).
* ``reprise_kafka`` (session): the broker: ``--reprise-kafka HOST:PORT``, else ``REPRISE_TESTING_KAFKA``,
  else one listening on 127.0.0.1:9092, else a local one started with ``reprise kafka start`` (and
  stopped at the end of the session).
* ``reprise_engine`` (module): an ``EmbeddedEngine`` running ``reprise_app``, killed and its topics
  deleted after the module's last test.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from reprise.testing.engine import EmbeddedEngine

LOCAL_BROKER = "127.0.0.1:9092"


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("reprise", "Reprise test engines (reprise.testing)")
    group.addoption("--reprise-kafka", metavar="HOST:PORT", default=None,
                    help="the Kafka broker for reprise_engine (else REPRISE_TESTING_KAFKA, else 127.0.0.1:9092 "
                         "if it answers, else a local broker started for the session)")
    parser.addini("reprise_app", "the restate-sdk app reprise_engine embeds, as module:attribute", default="")


def _reachable(bootstrap: str) -> bool:
    from confluent_kafka.admin import AdminClient

    try:
        AdminClient({"bootstrap.servers": bootstrap}).list_topics(timeout=3)
        return True
    except Exception:  # noqa: BLE001 - unreachable, whatever the reason
        return False


@pytest.fixture(scope="session")
def reprise_kafka(request: pytest.FixtureRequest) -> Iterator[str]:
    """The broker's bootstrap address (see the module's docstring for which one)."""
    named = request.config.getoption("--reprise-kafka") or os.environ.get("REPRISE_TESTING_KAFKA")
    if named:
        yield named
        return
    if _reachable(LOCAL_BROKER):
        yield LOCAL_BROKER
        return
    from reprise.deploy.kafka.local import LocalKafka

    kafka = LocalKafka(home=Path(request.config.rootpath) / ".reprise")
    yield kafka.start()
    kafka.stop()


@pytest.fixture(scope="module")
def reprise_app(request: pytest.FixtureRequest) -> str:
    """Override with a fixture returning ``"package.module:app"``, or set ``reprise_app`` in the ini."""
    spec = str(request.config.getini("reprise_app"))
    if not spec:
        pytest.fail("reprise_engine needs the app to embed: define a reprise_app fixture returning "
                    "'package.module:app', or set reprise_app in the pytest ini options", pytrace=False)
    return spec


@pytest.fixture(scope="module")
def reprise_engine_env() -> dict[str, str]:
    """Extra environment variables of the engine process (and so of your app inside it)."""
    return {}


@pytest.fixture(scope="module")
def reprise_engine(reprise_kafka: str, reprise_app: str, reprise_engine_env: dict[str, str],
                   tmp_path_factory: pytest.TempPathFactory,
                   request: pytest.FixtureRequest) -> Iterator[EmbeddedEngine]:
    """An engine with ``reprise_app`` embedded, shared by the module's tests (give each test keys of its own)."""
    from reprise.testing.engine import EmbeddedEngine

    engine = EmbeddedEngine(reprise_app, reprise_kafka, tmp_path_factory.mktemp("reprise-engine"),
                            env=reprise_engine_env, cwd=Path(request.config.rootpath))
    try:
        engine.start()
        yield engine
    finally:
        engine.close()
