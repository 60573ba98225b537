"""Cohort extraction speed with 1 and 2 workers on PyRadiomics' five real cases. Prints a table.

Usage: python bench/handcrafted_workers.py [--preset ct-tanaka] [--repeats 2]
The cases are fetched once into the user cache (see `rtresponse sample-data --kind pyradiomics`).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "RadiotherapyResponse"))

from rtresponse.cohort import load_manifest  # noqa: E402
from rtresponse.features.handcrafted import extract_cohort  # noqa: E402
from rtresponse.sampledata.pyradiomics import write_cohort  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--preset", default="ct-tanaka")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        cohort = load_manifest(write_cohort(folder))
        extract_cohort(cohort, image="scan", mask="tumour", settings=args.preset, n_jobs=max(args.workers))  # warm-up
        timings = {}
        for workers in args.workers:
            runs = []
            for _ in range(args.repeats):
                start = time.perf_counter()
                table = extract_cohort(cohort, image="scan", mask="tumour", settings=args.preset, n_jobs=workers)
                runs.append(time.perf_counter() - start)
                assert (table["status"] == "ok").all(), table["status"]
            timings[workers] = statistics.median(runs)
    base = timings[args.workers[0]]
    print(f"preset {args.preset}, {len(cohort)} cases, median of {args.repeats} run(s)")
    print(f"{'workers':>7} {'seconds':>9} {'speed-up':>9}")
    for workers, seconds in timings.items():
        print(f"{workers:>7} {seconds:>9.2f} {base / seconds:>8.2f}x")


if __name__ == "__main__":
    main()
