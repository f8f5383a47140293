"""``python -m showme_i2g``: the command line (see :mod:`showme_i2g.cli`)."""

import sys

from .cli import main

if __name__ == "__main__":
    sys.exit(main())
