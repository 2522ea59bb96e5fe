"""Every check that needs a GPU, in one prepared call: the suite lives in src/dhns/gpu_suite/.

    python3 scripts/gpu_suite.py --device cuda --out /tmp/gpu-suite --archive $OUT/gpu-suite.tar.gz

Why this file: the device machine has a bare checkout, nothing of ours installed, so this puts the
checkout's src/ first on sys.path and runs the package's entry point; `make gpu-suite` and every documented
command keep working. `python -m dhns.gpu_suite` is the same where dhns is importable.
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from dhns.gpu_suite.cli import main  # noqa: E402  (src/ must be on sys.path first)

if __name__ == "__main__":
    sys.exit(main())
