"""The pure core of a partition: apply() per record kind over a Transaction, the tables it reads
and writes, an invocation's lifecycle. No Kafka, RocksDB, asyncio or clock (enforced by import contracts)."""
