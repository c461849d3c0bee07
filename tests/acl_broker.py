"""A single-node Kafka with authentication and authorization on: SASL/PLAIN on every listener, the
StandardAuthorizer, ``allow.everyone.if.no.acl.found=false`` and one super user (``admin``).

The same jars and template as ``deploy/kafka/local.py`` (its listener and security lines overridden:
in a properties file the later line wins). Principals are ``User:<name>`` for the users given, so a
test can act as the engine, as a client team, and as the operator who sets the ACLs.
"""

from __future__ import annotations

from pathlib import Path

from reprise.deploy.kafka.local import LocalKafka

ADMIN = "admin"


def _jaas(self_name: str, users: dict[str, str]) -> str:
    """The PLAIN login module: the broker's own credentials (as a client of itself) and every user's."""
    accounts = " ".join(f'user_{name}="{password}"' for name, password in users.items())
    return (f'org.apache.kafka.common.security.plain.PlainLoginModule required username="{self_name}" '
            f'password="{users[self_name]}" {accounts};')


def secured_properties(port: int, controller_port: int, users: dict[str, str]) -> str:
    jaas = _jaas(ADMIN, users)
    return f"""
# Appended by tests/acl_broker.py: SASL/PLAIN on every listener, ACLs enforced.
listeners=SASL_PLAINTEXT://127.0.0.1:{port},CONTROLLER://127.0.0.1:{controller_port}
advertised.listeners=SASL_PLAINTEXT://127.0.0.1:{port}
listener.security.protocol.map=SASL_PLAINTEXT:SASL_PLAINTEXT,CONTROLLER:SASL_PLAINTEXT
inter.broker.listener.name=SASL_PLAINTEXT
sasl.enabled.mechanisms=PLAIN
sasl.mechanism.inter.broker.protocol=PLAIN
sasl.mechanism.controller.protocol=PLAIN
listener.name.sasl_plaintext.plain.sasl.jaas.config={jaas}
listener.name.controller.plain.sasl.jaas.config={jaas}
authorizer.class.name=org.apache.kafka.metadata.authorizer.StandardAuthorizer
allow.everyone.if.no.acl.found=false
super.users=User:{ADMIN}
"""


def client_settings(user: str, password: str) -> dict[str, str]:
    """librdkafka's settings for one principal (what its ``client.properties`` would say)."""
    return {"security.protocol": "SASL_PLAINTEXT", "sasl.mechanisms": "PLAIN",
            "sasl.username": user, "sasl.password": password}


def secured_kafka(home: Path, port: int, controller_port: int, users: dict[str, str],
                  heap: str = "320m") -> LocalKafka:
    """The broker (not started); ``users`` must include ``admin``, the super user it connects as."""
    return LocalKafka(home=home, port=port, controller_port=controller_port, heap=heap,
                      extra_properties=secured_properties(port, controller_port, users),
                      client_settings=client_settings(ADMIN, users[ADMIN]))
