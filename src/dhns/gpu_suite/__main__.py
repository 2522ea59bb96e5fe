"""`python -m dhns.gpu_suite`: the suite where src/ is importable (scripts/gpu_suite.py also works without that)."""

import sys

from dhns.gpu_suite.cli import main

if __name__ == "__main__":
    sys.exit(main(prog="python -m dhns.gpu_suite"))
