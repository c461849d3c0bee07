"""A partition's state on disk and its copies: the RocksDB store, the changelog, snapshots and their
stores, restore and rebuild from the log, and the read-only view that introspection uses."""
