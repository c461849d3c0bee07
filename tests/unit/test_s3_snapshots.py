"""Snapshots in an S3-compatible store: SigV4 against AWS's published example, and a round trip
through a real S3 API server (moto's, in-process on a local port)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path

import pytest

from reprise.partitions.core.transaction import Transaction, applied_offset
from reprise.partitions.state.rocks_store import RocksStore
from reprise.partitions.state.s3 import sign_v4
from reprise.partitions.state.snapshots import open_snapshots, restore_if_newer
from tests.harness import free_port


def test_signature_matches_the_aws_documentation_example() -> None:
    """The GET Object example of AWS's "Signature Version 4 for S3" documentation (header auth)."""
    empty = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    headers = sign_v4("GET", "https://examplebucket.s3.amazonaws.com/test.txt", {"Range": "bytes=0-9"}, empty,
                      "AKIAIOSFODNN7EXAMPLE", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY", "us-east-1",
                      dt.datetime(2013, 5, 24, tzinfo=dt.UTC))
    assert headers["authorization"] == (
        "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request, "
        "SignedHeaders=host;range;x-amz-content-sha256;x-amz-date, "
        "Signature=f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41")


@pytest.fixture
def s3_endpoint(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    moto_server = pytest.importorskip("moto.server")  # a dev dependency: present wherever the suite runs
    port = free_port()
    server = moto_server.ThreadedMotoServer(ip_address="127.0.0.1", port=port)
    server.start()
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "reprise")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "reprise-secret")
    endpoint = f"http://127.0.0.1:{port}"
    import httpx
    assert httpx.put(f"{endpoint}/snaps").status_code == 200  # create the bucket
    yield endpoint
    server.stop()


def test_snapshots_round_trip_through_an_s3_api(s3_endpoint: str, tmp_path: Path) -> None:
    snaps = open_snapshots(f"s3://snaps/cluster-a?endpoint={s3_endpoint}&region=eu-west-1", retain=2)
    store = RocksStore(tmp_path / "p5")
    for offset in (100, 200, 300):
        tx = Transaction(store)
        tx.put(f"k{offset}".encode(), str(offset).encode())
        tx.commit(offset)
        assert snaps.take(5, store, tmp_path / "scratch").applied_offset == offset
    store.close()
    kept = snaps.list(5)
    assert [s.applied_offset for s in kept] == [200, 300]
    assert kept[-1].location == "s3://snaps/cluster-a/p5/00000000000000000300.tar"
    assert snaps.list(6) == []
    assert restore_if_newer(snaps, 5, tmp_path / "restored", -1) == 300
    restored = RocksStore(tmp_path / "restored")
    assert applied_offset(restored) == 300 and restored.get(b"k300") == b"300" and restored.get(b"k100") == b"100"
    restored.close()
