"""The topic ACLs docs/kafka.md tells operators to create, read from the doc itself.

The ``kafka-acls.sh`` commands of the doc's ACL section are parsed into the Admin API's
``AclBinding``s, so a test enforces exactly what the doc says: change the doc and the test checks
the new rules. Anything in a command this parser does not know is an error, never skipped.
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path

from confluent_kafka.admin import AclBinding, AclOperation, AclPermissionType, ResourcePatternType, ResourceType

DOC = Path(__file__).resolve().parent.parent / "docs" / "kafka.md"
SECTION = "## The trust boundary and its ACLs"
RESOURCES = {"--topic": ResourceType.TOPIC, "--group": ResourceType.GROUP,
             "--transactional-id": ResourceType.TRANSACTIONAL_ID}


class DocAclError(ValueError):
    """The doc's command is not one this parser understands; the message quotes it."""


def doc_commands(doc: Path = DOC) -> list[list[str]]:
    """Each ``kafka-acls.sh`` command of the section's first ``sh`` block, as its argument list."""
    text = doc.read_text()
    start = text.index(SECTION)
    block = re.search(r"```sh\n(.*?)```", text[start:], re.S)
    if block is None:
        raise DocAclError(f"no sh block under {SECTION!r} in {doc}")
    joined = re.sub(r"\\\n\s*", " ", block.group(1))
    commands = [shlex.split(line) for line in joined.splitlines() if line.strip() and not line.lstrip().startswith("#")]
    for c in commands:
        if c[0] != "kafka-acls.sh":
            raise DocAclError(f"not a kafka-acls.sh command: {shlex.join(c)}")
    return [c[1:] for c in commands]


def _operation(name: str) -> AclOperation:
    """``DescribeConfigs`` -> ``DESCRIBE_CONFIGS``."""
    return AclOperation[re.sub(r"(?<!^)(?=[A-Z])", "_", name).upper()]


def bindings(args: list[str]) -> list[AclBinding]:
    """The ACLs one ``kafka-acls.sh --add`` command creates (``--bootstrap-server`` is the caller's)."""
    principals: list[str] = []
    operations: list[AclOperation] = []
    resources: list[tuple[ResourceType, str]] = []
    pattern = ResourcePatternType.LITERAL
    added = False
    it = iter(args)
    for flag in it:
        if flag == "--add":
            added = True
        elif flag in ("--bootstrap-server", "--command-config"):
            next(it)
        elif flag == "--allow-principal":
            principals.append(next(it))
        elif flag == "--operation":
            operations.append(_operation(next(it)))
        elif flag in RESOURCES:
            resources.append((RESOURCES[flag], next(it)))
        elif flag == "--cluster":
            resources.append((ResourceType.BROKER, "kafka-cluster"))
        elif flag == "--resource-pattern-type":
            pattern = ResourcePatternType[next(it).upper()]
        else:
            raise DocAclError(f"unknown argument {flag!r} in: kafka-acls.sh {shlex.join(args)}")
    if not (added and principals and operations and resources):
        raise DocAclError(f"not a complete --add command: kafka-acls.sh {shlex.join(args)}")
    return [AclBinding(rtype, name, pattern, principal, "*", op, AclPermissionType.ALLOW)
            for principal in principals for op in operations for rtype, name in resources]


def documented_acls(doc: Path = DOC) -> list[AclBinding]:
    return [b for args in doc_commands(doc) for b in bindings(args)]
