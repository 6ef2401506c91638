"""``python -m crbnn ...``: the command line of :mod:`crbnn.cli`."""

import sys

from crbnn.cli import main

sys.exit(main())
