"""The in-memory twin of the RocksDB store, for unit tests of the pure core only."""

from __future__ import annotations

from collections.abc import Iterator


class MemoryStore:
    """The in-memory twin, for unit tests of the pure core only."""

    def __init__(self) -> None:
        self.data: dict[bytes, bytes] = {}
        self.objects: dict[bytes, object] = {}

    def get(self, key: bytes) -> bytes | None:
        return self.data.get(key)

    def write(self, puts: dict[bytes, bytes | None], objects: dict[bytes, object] | None = None) -> None:
        for k, v in puts.items():
            self.objects.pop(k, None)
            if v is None:
                self.data.pop(k, None)
            else:
                self.data[k] = v
        self.objects.update(objects or {})

    def committed_object(self, key: bytes) -> object | None:
        return self.objects.get(key)

    def scan(self, prefix: bytes, start: bytes | None = None) -> Iterator[tuple[bytes, bytes]]:
        """Rows under ``prefix`` in key order, from ``start`` (inclusive) if given."""
        for k in sorted(self.data):
            if k.startswith(prefix) and (start is None or k >= start):
                yield k, self.data[k]

    def close(self) -> None:
        pass
