"""`python -m dhns.bench`."""

import sys

from dhns.bench.cli import main

sys.exit(main())
