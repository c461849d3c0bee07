"""The ACL commands of docs/kafka.md parse into the bindings the ACL integration test creates, and a
command the parser does not understand is an error, not silently dropped."""

from __future__ import annotations

import shlex

import pytest
from confluent_kafka.admin import AclOperation, ResourcePatternType, ResourceType

from tests.doc_acls import DocAclError, bindings, documented_acls


def test_the_doc_gives_the_engine_its_prefix_and_the_client_commands_only() -> None:
    acls = {(b.principal, b.restype, b.name, b.resource_pattern_type, b.operation) for b in documented_acls()}
    assert ("User:reprise", ResourceType.TOPIC, "reprise.", ResourcePatternType.PREFIXED, AclOperation.ALL) in acls
    assert ("User:reprise", ResourceType.GROUP, "reprise.", ResourcePatternType.PREFIXED, AclOperation.ALL) in acls
    client_writes = {name for principal, rtype, name, _, op in acls
                     if principal != "User:reprise" and rtype == ResourceType.TOPIC
                     and op in (AclOperation.WRITE, AclOperation.ALL)}
    assert client_writes == {"reprise.commands"}


@pytest.mark.parametrize("command", [
    "--add --allow-principal User:x --operation Write --topic t --deny-principal User:y",
    "--allow-principal User:x --operation Write --topic t",
    "--add --allow-principal User:x --topic t",
])
def test_what_the_parser_does_not_understand_is_an_error(command: str) -> None:
    with pytest.raises(DocAclError):
        bindings(shlex.split(command))


def test_operations_and_patterns_are_kafka_acls_names() -> None:
    [b] = bindings(shlex.split("--bootstrap-server $KAFKA --add --allow-principal User:x "
                               "--operation DescribeConfigs --group g. --resource-pattern-type prefixed"))
    assert (b.operation, b.restype, b.resource_pattern_type) == (
        AclOperation.DESCRIBE_CONFIGS, ResourceType.GROUP, ResourcePatternType.PREFIXED)
