"""``python -m nnkit``: the command line."""

import sys

from nnkit.cli import main

sys.exit(main())
