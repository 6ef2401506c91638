"""``python -m crbnn ...``: the command line of :mod:`crbnn.images.cli`."""

import sys

from crbnn.images.cli import main

sys.exit(main())
