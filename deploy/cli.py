"""The ``reprise`` command."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import sys
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Coroutine
from pathlib import Path
from typing import TYPE_CHECKING, Any

from reprise import __version__
from reprise.deploy import (
    cli_completion,
    cli_deployments,
    cli_errors,
    cli_identity,
    cli_output,
    cli_partitions,
    cli_replay,
    cli_schedules,
    native,
)
from reprise.deploy.cli_errors import CliError
from reprise.engine.config import Config
from reprise.engine.kafka_properties import bootstrap_of

if TYPE_CHECKING:
    from reprise.deploy.kafka.local import LocalKafka


def _config(args: argparse.Namespace) -> Config:
    cfg = Config.from_env(bootstrap=getattr(args, "kafka", None), namespace=getattr(args, "namespace", None),
                          kafka_config=getattr(args, "kafka_config", None),
                          partitions=getattr(args, "partitions", None),
                          home=Path(args.home) if getattr(args, "home", None) else None,
                          ingress_port=getattr(args, "ingress_port", None),
                          admin_port=getattr(args, "admin_port", None),
                          admin_token_file=getattr(args, "admin_token_file", None))
    if cfg.kafka_config:
        from reprise.engine.kafka import check_client_settings

        check_client_settings(cfg)
    return cfg


def _kafka_reachable(cfg: Config) -> None:
    """Stop with exit code 3 and one line when no broker answers, before anything waits on one."""
    from reprise.engine.kafka import unreachable

    why = unreachable(cfg)
    if why is not None:
        raise CliError(cli_errors.KAFKA_UNREACHABLE, why)


def _local_kafka(cfg: Config) -> LocalKafka:  # imported here: only these commands need it
    from reprise.deploy.kafka.local import LocalKafka

    return LocalKafka(home=cfg.home)


def cmd_kafka(args: argparse.Namespace) -> int:
    from reprise.deploy.kafka.local import ForeignKafka, KafkaToolMissing

    kafka = _local_kafka(_config(args))
    try:
        if args.action == "start":
            try:
                print(f"kafka ready on {kafka.start()}")
            except ForeignKafka as e:
                print(f"{e}: using it (reprise kafka stop will leave it running)")
        elif args.action == "stop":
            print("kafka stopped" if kafka.stop() else "kafka was not running")
        elif cli_output.wants_json(args):
            pid = kafka.pid()
            cli_output.print_json({"running": pid is not None, "pid": pid, "bootstrap": kafka.bootstrap})
        else:
            print(kafka.status())
    except KafkaToolMissing as e:
        print(f"reprise: {e}", file=sys.stderr)
        return 2
    return 0


def cmd_topics(args: argparse.Namespace) -> int:
    from reprise.engine.kafka import create_topics

    cfg = _config(args)
    _kafka_reachable(cfg)
    created = create_topics(cfg)
    print(f"created: {', '.join(created)}" if created else "all topics exist")
    _warn_single_replica(cfg, "topics")
    return 0


def _refused_to_start(cfg: Config, role: str) -> bool:
    """Refuse to start without an admin token where one is required, or with an unreadable identity key."""
    from reprise.engine.identity import IdentityKeyError, signer_from
    from reprise.ingress.admin_guard import AdminTokenError, required_token

    try:
        required_token(role, cfg.admin_host, cfg.admin_token, cfg.admin_token_file)
        signer = signer_from(cfg.request_identity_private_key_pem_file)
    except (AdminTokenError, IdentityKeyError) as e:
        print(f"reprise: {e}", file=sys.stderr)
        return True
    if signer is not None:
        print(f"reprise: requests to services are signed with {signer.key_id}", file=sys.stderr)
    return False


def _warn_single_replica(cfg: Config, role: str) -> None:
    from confluent_kafka import KafkaException

    from reprise.engine.kafka import single_replica_warning, topic_replicas

    try:
        replicas = topic_replicas(cfg, cfg.log_topic) or cfg.replication_factor  # else: as it will be created
    except KafkaException:  # Kafka not reachable yet: the start that follows says so
        return
    warning = single_replica_warning(replicas, role)
    if warning is not None:
        logging.getLogger("reprise").warning(warning)


def cmd_dev(args: argparse.Namespace) -> int:
    from reprise.deploy.runtime import run_dev

    cfg = _config(args)
    if _refused_to_start(cfg, "dev"):
        return 2
    kafka = None
    if args.kafka or os.environ.get("REPRISE_BOOTSTRAP") or (cfg.kafka_config and bootstrap_of(cfg.kafka_config)):
        _kafka_reachable(cfg)
    else:
        from reprise.deploy.kafka.local import ForeignKafka, KafkaToolMissing

        kafka = _local_kafka(cfg)
        try:
            kafka.start()
        except ForeignKafka as e:
            print(f"{e}: using it", file=sys.stderr)
            kafka = None
        except KafkaToolMissing as e:
            print(f"reprise: {e}", file=sys.stderr)
            return 2
    try:
        _run(run_dev(cfg))
    finally:
        if kafka is not None and not args.keep_kafka:
            logging.getLogger("rdkafka").setLevel(logging.CRITICAL)  # clients see their broker go away
            kafka.stop()
    return 0


def cmd_node(args: argparse.Namespace) -> int:
    """``reprise processor`` or ``reprise ingress``: one role of a cluster, against an existing Kafka."""
    from reprise.deploy.runtime import run

    cfg = _config(args)
    if _refused_to_start(cfg, args.command):
        return 2
    # No early exit when Kafka is unreachable: a cluster node waits for it with its health endpoints up
    # (live, and ready answering 503 with the reason) so that its supervisor sees why, and it ends
    # non-zero only if Kafka never answers (docs/operations.md).
    _warn_single_replica(cfg, args.command)
    _run(run(cfg, args.command))
    return 0


def _admin(args: argparse.Namespace, method: str, path: str, body: object = None) -> tuple[int, object]:
    """Call the admin API; (status, decoded JSON body)."""
    from reprise.ingress.admin_guard import AdminTokenError, read_token

    cfg = _config(args)
    data = json.dumps(body).encode() if body is not None else None
    headers = {"content-type": "application/json"}
    try:
        token = read_token(cfg.admin_token, cfg.admin_token_file)
    except AdminTokenError as e:
        return 0, {"message": str(e)}
    if token:
        headers["authorization"] = f"Bearer {token}"
    req = urllib.request.Request(f"http://{cfg.admin_host}:{cfg.admin_port}{path}", data=data, method=method,
                                 headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=60) as resp:
            return resp.status, json.loads(resp.read() or b"null")
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read() or b"null")
    except urllib.error.URLError as e:
        return 0, {"message": f"admin API at {cfg.admin_host}:{cfg.admin_port} unreachable: {e.reason}"}


def _print(status: int, out: object, ok: int = 300) -> int:
    """Print an admin API answer: its JSON body, or its error as one line; the exit code (docs/cli.md)."""
    if status == 0 or status >= ok:
        message = out.get("message", out) if isinstance(out, dict) else out
        print(f"reprise: {status or 'error'}: {message}", file=sys.stderr)
        return cli_errors.for_http_status(status) or cli_errors.FAILED
    print(json.dumps(out, indent=2))
    return 0


def cmd_register(args: argparse.Namespace) -> int:
    return _print(*_admin(args, "POST", "/deployments",
                          {"uri": args.uri, "use_http_11": args.http1, "force": args.force}))


def _object(out: object) -> dict[str, Any]:
    """An admin API body that is a JSON object (every 200 of the commands below is one)."""
    return out if isinstance(out, dict) else {}


def _handlers(svc: dict[str, Any]) -> str:
    return ", ".join(f"{h['name']}{' (' + h['ty'].lower() + ')' if h.get('ty') else ''}"
                     for h in svc.get("handlers", []))


def cmd_services(args: argparse.Namespace) -> int:
    if args.name:
        status, out = _admin(args, "GET", f"/services/{urllib.parse.quote(args.name, safe='')}")
        if status != 200:
            return _print(status, out)
        svc = _object(out)
        return cli_output.emit_fields(args, svc, [(k, _handlers(svc) if k == "handlers" else v)
                                                  for k, v in svc.items()])
    status, out = _admin(args, "GET", "/services")
    if status != 200:
        return _print(status, out)
    services = _object(out).get("services", [])
    return cli_output.emit(args, out, ["NAME", "TYPE", "HANDLERS"],
                           [(s["name"], s.get("ty", ""), _handlers(s)) for s in services])


def cmd_invocations(args: argparse.Namespace) -> int:
    if args.action == "ls":
        query = f"?limit={args.limit}" + (f"&status={args.status}" if args.status else "")
        status, out = _admin(args, "GET", "/invocations" + query)
        if status != 200:
            return _print(status, out)
        rows = [(inv["id"], inv["status"], inv["target"], inv["attempts"], _failure(inv.get("last_failure")))
                for inv in _object(out).get("invocations", [])]
        return cli_output.emit(args, out, ["ID", "STATUS", "TARGET", "ATTEMPTS", "LAST FAILURE"], rows)
    if not args.id:
        print("reprise: an invocation id is required", file=sys.stderr)
        return 2
    if args.action == "describe":
        status, out = _admin(args, "GET", f"/invocations/{args.id}")
        if status != 200:
            return _print(status, out)
        inv = _object(out)
        return cli_output.emit_fields(args, inv, [(k, _failure(v) if k == "last_failure" else v)
                                                  for k, v in inv.items() if k != "journal"]
                                      + [(f"journal[{e['index']}]", e) for e in inv.get("journal", [])])
    status, out = _admin(args, "PATCH", f"/invocations/{args.id}/{args.action}")
    return _print(status, out if status >= 300 else {"invocation": args.id, args.action: status})


def _failure(failure: dict[str, Any] | None) -> str:
    return f"{failure.get('code')} {str(failure.get('message', ''))[:60]}" if failure else ""


def cmd_subscriptions(args: argparse.Namespace) -> int:
    if args.action == "create":
        if not args.topic or not args.target or "/" not in args.target:
            print("reprise: create needs --topic T --target Service/handler", file=sys.stderr)
            return 2
        return _print(*_admin(args, "POST", "/subscriptions", {
            "source": f"kafka://{args.cluster or _config(args).kafka_cluster_name}/{args.topic}",
            "sink": f"service://{args.target}", "options": dict(o.partition("=")[::2] for o in args.option or [])}))
    if args.action == "delete":
        if not args.id:
            print("reprise: delete needs a subscription id", file=sys.stderr)
            return 2
        status, out = _admin(args, "DELETE", f"/subscriptions/{args.id}")
        return _print(status, out if status >= 300 else {"deleted": args.id})
    status, out = _admin(args, "GET", "/subscriptions")
    if status != 200:
        return _print(status, out)
    return cli_output.emit(args, out, ["ID", "SOURCE", "SINK"],
                           [(s["id"], s["source"], s["sink"]) for s in _object(out).get("subscriptions", [])])


def cmd_state(args: argparse.Namespace) -> int:
    status, out = _admin(args, "GET", f"/services/{args.service}/state/{urllib.parse.quote(args.key, safe='')}")
    if status != 200:
        return _print(status, out)
    state = _object(out).get("state", {})
    return cli_output.emit(args, out, ["NAME", "VALUE"], sorted(state.items()))


def _run(coro: Coroutine[Any, Any, None]) -> None:
    try:
        import uvloop

        uvloop.run(coro)
    except ImportError:
        asyncio.run(coro)


def _common(p: argparse.ArgumentParser, kafka: bool = True) -> None:
    if kafka:  # each under its own name and under the name Kafka's own tools give it
        p.add_argument("--kafka", "--bootstrap-server", dest="kafka", metavar="HOST:PORT",
                       help="use this Kafka instead of the local one")
        p.add_argument("--kafka-config", "--command-config", dest="kafka_config", metavar="FILE",
                       help="Kafka client properties for every client (SASL, TLS, tuning): docs/cluster.md")
    p.add_argument("--namespace", help="topic prefix (default reprise)")
    p.add_argument("--home", help="state directory (default .reprise)")
    p.add_argument("--admin-token-file", metavar="FILE",
                   help="the admin API's bearer token, read from FILE (else REPRISE_ADMIN_TOKEN): docs/security.md")


def parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="reprise", description="Durable execution on Apache Kafka")
    ap.add_argument("-v", "--verbose", action="store_true")
    ap.add_argument("--version", action="version", version=f"reprise {__version__}")
    sub = ap.add_subparsers(dest="command", required=True)

    p = sub.add_parser("kafka", help="the local single-node Kafka broker")
    p.add_argument("action", choices=["start", "stop", "status"])
    cli_output.add_flag(p)  # with status
    _common(p, kafka=False)
    p.set_defaults(fn=cmd_kafka)

    p = sub.add_parser("topics", help="create the topics Reprise needs (idempotent)")
    p.add_argument("action", choices=["create"])
    p.add_argument("--partitions", type=int, help="log topic partitions (default 8)")
    _common(p)
    p.set_defaults(fn=cmd_topics)

    p = sub.add_parser("dev", help="run Kafka, processors, ingress and admin API in the foreground")
    p.add_argument("--partitions", type=int)
    p.add_argument("--ingress-port", type=int)
    p.add_argument("--admin-port", type=int)
    p.add_argument("--keep-kafka", action="store_true", help="leave the local Kafka running on exit")
    _common(p)
    p.set_defaults(fn=cmd_dev)

    p = sub.add_parser("processor", help="a partition processor: joins the consumer group, owns what it is given")
    p.add_argument("--admin-port", type=int, help="its admin API: health, metrics, partitions, snapshots")
    _common(p)
    p.set_defaults(fn=cmd_node)

    p = sub.add_parser("ingress", help="the HTTP ingress and admin API, without partitions (scale it out freely)")
    p.add_argument("--ingress-port", type=int)
    p.add_argument("--admin-port", type=int)
    _common(p)
    p.set_defaults(fn=cmd_node)

    p = sub.add_parser("register", help="register a service deployment (POST /deployments)")
    p.add_argument("uri")
    p.add_argument("--http1", action="store_true", help="the deployment speaks HTTP/1.1 (e.g. uvicorn)")
    p.add_argument("--force", action="store_true", help="replace a deployment already registered at this uri")
    p.add_argument("--admin-port", type=int)
    _common(p, kafka=False)
    p.set_defaults(fn=cmd_register)

    p = sub.add_parser("services", help="list registered services and their handlers, or describe one")
    p.add_argument("name", nargs="?", help="describe this service")
    cli_output.add_flag(p)
    p.add_argument("--admin-port", type=int)
    _common(p, kafka=False)
    p.set_defaults(fn=cmd_services)

    p = sub.add_parser("invocations", help="list, describe and control invocations")
    p.add_argument("action", choices=["ls", "describe", "cancel", "kill", "purge", "pause", "resume"])
    p.add_argument("id", nargs="?")
    p.add_argument("--status", help="with ls: only this status (e.g. SUSPENDED)")
    p.add_argument("--limit", type=int, default=50)
    cli_output.add_flag(p)
    p.add_argument("--admin-port", type=int)
    _common(p, kafka=False)
    p.set_defaults(fn=cmd_invocations)

    p = sub.add_parser("subscriptions", help="invoke a handler for each record of a Kafka topic")
    p.add_argument("action", choices=["create", "delete", "ls"])
    p.add_argument("id", nargs="?", help="with delete: the subscription id")
    p.add_argument("--topic", help="with create: the Kafka topic to read")
    p.add_argument("--target", help="with create: Service/handler to invoke")
    p.add_argument("--cluster", help="with create: the Kafka cluster the topic is on (default: the one Reprise "
                                     "runs on, REPRISE_KAFKA_CLUSTER_NAME or 'default'; or one of /kafka-clusters)")
    p.add_argument("--option", action="append", metavar="KEY=VALUE",
                   help="with create: a consumer option, e.g. auto.offset.reset=latest (repeatable)")
    cli_output.add_flag(p)
    p.add_argument("--admin-port", type=int)
    _common(p, kafka=False)
    p.set_defaults(fn=cmd_subscriptions)

    cli_partitions.add_parser(sub, _common, _config)
    cli_identity.add_parser(sub, _config)
    cli_schedules.add_parser(sub, _common, _admin, _print)
    cli_replay.add_parser(sub, _common, _config)
    cli_deployments.add_parser(sub, _common, _admin)

    p = sub.add_parser("native", help="which apply-path modules run compiled and which pure (deploy/native.py)")
    p.add_argument("action", nargs="?", choices=["status"], default="status")
    p.set_defaults(fn=lambda a: native.main([a.action]))

    p = sub.add_parser("state", help="read a virtual object's or workflow's state")
    p.add_argument("action", choices=["get"])
    p.add_argument("service")
    p.add_argument("key")
    cli_output.add_flag(p)
    p.add_argument("--admin-port", type=int)
    _common(p, kafka=False)
    p.set_defaults(fn=cmd_state)

    cli_completion.add_parser(sub, parser)
    return ap


def main(argv: list[str] | None = None) -> int:
    native.activate()  # before anything imports a module of the apply path
    args = parser().parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)
    try:
        return args.fn(args)
    except Exception as e:
        failure = cli_errors.for_exception(e)
        if failure is None:  # a bug: its traceback is what to report
            raise
        return cli_errors.fail(failure)


if __name__ == "__main__":
    sys.exit(main())
