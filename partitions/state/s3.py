"""Snapshots in an S3-compatible object store (AWS S3, MinIO, Ceph, R2...): ``REPRISE_SNAPSHOT_DIR=s3://...``.

    s3://<bucket>/<prefix>?endpoint=http://minio:9000&region=us-east-1

Credentials come from ``AWS_ACCESS_KEY_ID`` / ``AWS_SECRET_ACCESS_KEY`` (and ``AWS_SESSION_TOKEN``);
the endpoint from the URL or ``AWS_ENDPOINT_URL`` (default: AWS's regional endpoint). Requests are
path-style and signed with Signature Version 4, written out here (a few lines) rather than pulling
in boto3 for four calls: PUT, GET, DELETE and ListObjectsV2.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import os
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from urllib.parse import parse_qs, quote, urlsplit

import httpx

_NS = "{http://s3.amazonaws.com/doc/2006-03-01/}"


def _hmac(key: bytes, msg: str) -> bytes:
    return hmac.new(key, msg.encode(), hashlib.sha256).digest()


def sign_v4(method: str, url: str, headers: dict[str, str], payload_sha256: str, access_key: str, secret_key: str,
            region: str, now: dt.datetime, service: str = "s3") -> dict[str, str]:
    """The headers to send: ``headers`` plus host, x-amz-date, x-amz-content-sha256 and Authorization."""
    parts = urlsplit(url)
    amz_date, day = now.strftime("%Y%m%dT%H%M%SZ"), now.strftime("%Y%m%d")
    signed = {**{k.lower(): v.strip() for k, v in headers.items()}, "host": parts.netloc,
              "x-amz-date": amz_date, "x-amz-content-sha256": payload_sha256}
    query = sorted((k, v) for k, vs in parse_qs(parts.query, keep_blank_values=True).items() for v in vs)
    canonical = "\n".join([
        method, quote(parts.path or "/", safe="/-_.~"),
        "&".join(f"{quote(k, safe='-_.~')}={quote(v, safe='-_.~')}" for k, v in query),
        "".join(f"{k}:{signed[k]}\n" for k in sorted(signed)), ";".join(sorted(signed)), payload_sha256])
    scope = f"{day}/{region}/{service}/aws4_request"
    to_sign = "\n".join(["AWS4-HMAC-SHA256", amz_date, scope, hashlib.sha256(canonical.encode()).hexdigest()])
    key = _hmac(_hmac(_hmac(_hmac(f"AWS4{secret_key}".encode(), day), region), service), "aws4_request")
    signature = hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()
    signed["authorization"] = (f"AWS4-HMAC-SHA256 Credential={access_key}/{scope}, "
                               f"SignedHeaders={';'.join(sorted(signed))}, Signature={signature}")
    return signed


@dataclass(frozen=True)
class S3Object:
    key: str
    size: int


class S3Bucket:
    """The four calls snapshots need, on one bucket."""

    def __init__(self, url: str) -> None:
        parts = urlsplit(url)
        options = {k: v[0] for k, v in parse_qs(parts.query).items()}
        self.bucket = parts.netloc
        self.prefix = parts.path.strip("/")
        self.region = options.get("region") or os.environ.get("AWS_REGION", "us-east-1")
        self.endpoint = (options.get("endpoint") or os.environ.get("AWS_ENDPOINT_URL")
                         or f"https://s3.{self.region}.amazonaws.com").rstrip("/")
        self._access = os.environ.get("AWS_ACCESS_KEY_ID", "")
        self._secret = os.environ.get("AWS_SECRET_ACCESS_KEY", "")
        self._token = os.environ.get("AWS_SESSION_TOKEN")
        self._http = httpx.Client(timeout=300)

    def key(self, name: str) -> str:
        return f"{self.prefix}/{name}" if self.prefix else name

    def _request(self, method: str, key: str, body: bytes = b"", query: str = "") -> httpx.Response:
        url = f"{self.endpoint}/{self.bucket}" + (f"/{quote(key, safe='/-_.~')}" if key else "") + \
            (f"?{query}" if query else "")
        extra = {"x-amz-security-token": self._token} if self._token else {}
        headers = sign_v4(method, url, extra, hashlib.sha256(body).hexdigest(), self._access, self._secret,
                          self.region, dt.datetime.now(dt.UTC))
        headers.pop("host")  # httpx sets the same value
        resp = self._http.request(method, url, content=body or None, headers=headers)
        if resp.status_code >= 300 and not (method == "DELETE" and resp.status_code == 404):
            raise RuntimeError(f"S3 {method} {url}: {resp.status_code} {resp.text[:300]}")
        return resp

    def put(self, name: str, body: bytes) -> None:
        self._request("PUT", self.key(name), body)

    def get(self, name: str) -> bytes:
        return self._request("GET", self.key(name)).content

    def delete(self, name: str) -> None:
        self._request("DELETE", self.key(name))

    def list(self, prefix: str) -> list[S3Object]:
        """Objects under ``prefix`` (relative to the bucket prefix), in key order, names relative too."""
        out: list[S3Object] = []
        token = ""
        full = self.key(prefix)
        while True:
            query = f"list-type=2&prefix={quote(full, safe='')}" + \
                (f"&continuation-token={quote(token, safe='')}" if token else "")
            root = ET.fromstring(self._request("GET", "", query=query).content)
            for item in root.iter(f"{_NS}Contents"):
                key = item.findtext(f"{_NS}Key") or ""
                out.append(S3Object(key[len(self.key("")):] if self.prefix else key,
                                    int(item.findtext(f"{_NS}Size") or 0)))
            token = root.findtext(f"{_NS}NextContinuationToken") or ""
            if root.findtext(f"{_NS}IsTruncated") != "true" or not token:
                return sorted(out, key=lambda o: o.key)
