"""A processor's consumer ``client.id`` advertises its admin API and keeps the operator's own id first."""

from __future__ import annotations

from reprise.engine.cluster_members import advertised_in, processor_client_id
from reprise.engine.config import Config


def test_the_advertisement_follows_the_operators_client_id() -> None:
    cfg = Config(namespace="ns", admin_host="10.0.0.7", admin_port=9171)
    assert processor_client_id(cfg) == "reprise-processor admin=http://10.0.0.7:9171"
    mine = processor_client_id(cfg, "billing-team")
    assert mine.split(" ")[0] == "billing-team"
    assert advertised_in(mine) == advertised_in(processor_client_id(cfg)) == "http://10.0.0.7:9171"
    assert advertised_in("rdkafka") is None and advertised_in("billing-team") is None
