"""`python -m dhns.gpu_suite.machine_probe`: what torch sees here, as one JSON line on stdout.

Run as a child with the parts' environment, so the summary's machine line is what the parts got.
"""

from __future__ import annotations

import json
import platform
from typing import Any


def describe() -> dict[str, Any]:
    import torch

    cuda = torch.cuda.is_available()
    return {"torch": torch.__version__, "python": platform.python_version(), "cuda_available": cuda,
            "cuda": torch.version.cuda, "gpu": torch.cuda.get_device_name() if cuda else None,
            "gpu_memory_gib": torch.cuda.get_device_properties(0).total_memory / 2**30 if cuda else None}


if __name__ == "__main__":
    print(json.dumps(describe()))
