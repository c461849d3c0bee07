"""Errors of the pure core."""


class RejectedRecord(Exception):
    """A record that is well-formed Avro but makes no sense here (e.g. a malformed invocation id).

    apply() undoes whatever the record changed and the processor moves it to the dead-letter topic.
    """
