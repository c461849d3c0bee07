"""The Avro schemas of log records and stored rows, and their codec."""
