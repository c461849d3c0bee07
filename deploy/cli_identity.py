"""``reprise identity keygen|public-key``: the request identity key (engine/identity.py)."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable

from reprise.engine.config import Config
from reprise.engine.identity import IdentityKeyError, generate_pem, load_private_key, public_key_id

KEY_ENV = "REPRISE_REQUEST_IDENTITY_PRIVATE_KEY_PEM_FILE"


def cmd_identity(args: argparse.Namespace, config: Callable[[argparse.Namespace], Config]) -> int:
    if args.action == "keygen":
        if not args.out:
            print("reprise: keygen needs --out FILE (the private key is written there, mode 0600)", file=sys.stderr)
            return 2
        try:
            fd = os.open(args.out, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except OSError as e:
            print(f"reprise: cannot create {args.out}: {e}", file=sys.stderr)
            return 1
        with os.fdopen(fd, "wb") as f:
            f.write(generate_pem())
        path = args.out
        print(f"private key written to {path}: give it to the engine with {KEY_ENV}={path}", file=sys.stderr)
    else:
        path = args.key or config(args).request_identity_private_key_pem_file
        if not path:
            print(f"reprise: public-key needs --key FILE or {KEY_ENV}", file=sys.stderr)
            return 2
    try:
        print(public_key_id(load_private_key(path)))
    except IdentityKeyError as e:
        print(f"reprise: {e}", file=sys.stderr)
        return 1
    return 0


def add_parser(sub: argparse._SubParsersAction, config: Callable[[argparse.Namespace], Config]) -> None:
    p = sub.add_parser("identity", help="the Ed25519 key that signs requests to services (docs/security.md)")
    p.add_argument("action", choices=["keygen", "public-key"],
                   help="keygen: write a new private key and print its public key; "
                        "public-key: print the public key (publickeyv1_...) services are configured with")
    p.add_argument("--out", help="with keygen: the private key file to create")
    p.add_argument("--key", help=f"with public-key: the private key file (default: {KEY_ENV})")
    p.set_defaults(fn=lambda a: cmd_identity(a, config))
