"""``python -m reprise``: the same as the ``reprise`` command."""

import sys

from reprise.deploy.cli import main

if __name__ == "__main__":
    sys.exit(main())
