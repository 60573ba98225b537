"""How long `import rtresponse` (and the CLI module) takes, and which heavy packages it loads.

Each measurement runs in a fresh interpreter so nothing is cached in-process. Prints a table.
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
from pathlib import Path

LIBRARY = Path(__file__).resolve().parents[1] / "RadiotherapyResponse"
HEAVY = ("torch", "radiomics", "monai", "timm", "sklearn", "SimpleITK", "pandas", "vtk", "slicer")
PROBE = """
import json, sys, time
t = time.perf_counter()
import {module}
elapsed = time.perf_counter() - t
print(json.dumps({{"seconds": elapsed, "heavy": [m for m in {heavy!r} if m in sys.modules]}}))
"""


def measure(module: str, repeats: int = 5) -> tuple[float, list[str]]:
    times, heavy = [], []
    for _ in range(repeats):
        out = subprocess.run([sys.executable, "-c", PROBE.format(module=module, heavy=HEAVY)], cwd=LIBRARY,
                             capture_output=True, text=True, check=True).stdout
        result = json.loads(out)
        times.append(result["seconds"])
        heavy = result["heavy"]
    return statistics.median(times), heavy


def main() -> None:
    print(f"{'module':<24} {'median import (s)':>18}  heavy packages loaded")
    for module in ("rtresponse", "rtresponse.cli", "rtresponse.cohort", "rtresponse.mrml"):
        seconds, heavy = measure(module)
        print(f"{module:<24} {seconds:>18.4f}  {', '.join(heavy) or 'none'}")


if __name__ == "__main__":
    main()
