"""The typed faces of the records (schemas/records.py) match the schemas, and the Invoke constructor
builds exactly the schema's record."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from reprise.schemas import codec, records, typegen
from reprise.schemas.invoke import new_invoke

SCHEMAS = Path(codec.__file__).parent


def test_records_py_is_what_typegen_writes_from_the_schemas() -> None:
    assert (SCHEMAS / "records.py").read_text() == typegen.render(), \
        "a schema changed: run python -m reprise.schemas.typegen"


@pytest.mark.parametrize("kind_version", sorted(codec._ALL))
def test_each_record_type_names_exactly_its_schema_fields(kind_version: tuple[str, int]) -> None:
    schema = json.loads((SCHEMAS / codec._ALL[kind_version]).read_text())
    typed = records.BY_KIND[kind_version]
    assert list(typed.__annotations__) == [f["name"] for f in schema["fields"]]


def test_new_invoke_is_a_whole_invoke_that_round_trips() -> None:
    rec = new_invoke(invocation_id="inv_1", service="Greeter", handler="greet", input=b"{}",
                     headers=[{"name": "a", "value": "b"}], caller={"invocation_id": "inv_2", "completion_id": 3},
                     sender_id="inv_3")
    assert list(rec) == list(records.Invoke.__annotations__)
    assert codec.decode("Invoke", codec.CURRENT["Invoke"], codec.encode("Invoke", rec)) == rec
    # a v1 body is a v2 body without its last field (a null sender: one byte): still read, without it
    older = {k: v for k, v in rec.items() if k != "sender_id"}
    assert codec.decode("Invoke", 1, codec.encode("Invoke", {**rec, "sender_id": None})[:-1]) == older


def test_two_records_of_one_name_in_different_files_get_different_types() -> None:
    # InvokeCommand declares its own ReplyTo (no ingress_id): it must not be typed as the common one
    assert "ingress_id" in records.ReplyTo.__annotations__
    assert "ingress_id" not in records.InvokeCommandReplyTo.__annotations__
