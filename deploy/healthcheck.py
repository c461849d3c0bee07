"""``python -m reprise.deploy.healthcheck [live|ready]``: exit 0 while this container's admin API answers
``/health/<what>`` with 200, else 1 (the image's HEALTHCHECK; docs/operations.md says what each means).

The port is the process's own (``REPRISE_ADMIN_PORT`` or its default); standard library only, so a
check every few seconds costs an interpreter start and one request.
"""

from __future__ import annotations

import sys
import urllib.error
import urllib.request

from reprise.engine.config import Config

CHECKS = ("live", "ready")


def main(argv: list[str]) -> int:
    what = argv[0] if argv else "live"
    if what not in CHECKS:
        print(f"usage: python -m reprise.deploy.healthcheck [{'|'.join(CHECKS)}]", file=sys.stderr)
        return 2
    url = f"http://127.0.0.1:{Config.from_env().admin_port}/health/{what}"
    try:
        with urllib.request.urlopen(url, timeout=4) as answer:
            return 0 if answer.status == 200 else 1
    except (urllib.error.URLError, OSError) as e:
        print(f"{url}: {e}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
