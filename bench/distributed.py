"""Cohort extraction and the selector x classifier grid: local processes against a Dask LocalCluster. Prints a table.

Runs the same handcrafted cohort extraction (a synthetic cohort written once) and the same 0.632+ bootstrap grid
(a planted-signal feature matrix) with
  - local, 1 worker (this process) and local, 2 workers (joblib processes), and
  - a dask.distributed LocalCluster of 1 and of 2 single-threaded worker processes (``--scheduler local-cluster:N``),
and prints, for each, the median seconds, the speed-up over local with 1 worker and over the same kind with 1
worker, the overhead of Dask over local with as many workers, and whether the table is identical to local with 1 worker.

Every configuration gets one core per worker: the local 1-worker run is held to one BLAS and one ITK thread (as
each joblib or Dask worker process is), so "1 worker" means one core everywhere and the speed-up is that of the
workers, not of threads inside one. The cluster is started before the timed runs (its start-up is printed
apart), every configuration first runs a small warm-up job (imports in the worker processes), untimed, and the
repeats go round all configurations in turn (the clusters stay up, idle, meanwhile), so a slow spell of the
machine falls on all of them alike.

Usage: python bench/distributed.py [--patients 24] [--size 96 96 32] [--perturbations 2]
       [--preset pyradiomics-default] [--grid-patients 100] [--features 200] [--draws 100] [--repeats 3]
       [--workers 1 2] [--skip-cohort] [--skip-grid]
A quick check that it runs: python bench/distributed.py --patients 4 --size 64 64 16 --perturbations 0
--grid-patients 30 --features 10 --draws 5 --selectors chi2 --classifiers lda nb --repeats 1.
Run it alone on the machine: other load distorts every speed-up.
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

# this file's folder first on sys.path would make `import distributed` import this script instead of Dask's package
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "RadiotherapyResponse"))

from rtresponse.cohort import load_manifest  # noqa: E402
from rtresponse.execution import Execution  # noqa: E402
from rtresponse.features.handcrafted import extract_cohort  # noqa: E402
from rtresponse.models.grid import run_grid  # noqa: E402
from rtresponse.sampledata.synthetic import write_cohort  # noqa: E402


@contextlib.contextmanager
def _one_core(workers: int, kind: str):
    """This process held to one BLAS and one ITK thread while it is the local run's only worker."""
    if kind != "local" or workers != 1:
        yield
        return
    import SimpleITK as sitk
    from threadpoolctl import threadpool_limits

    before = sitk.ProcessObject.GetGlobalDefaultNumberOfThreads()
    sitk.ProcessObject.SetGlobalDefaultNumberOfThreads(1)
    try:
        with threadpool_limits(1):
            yield
    finally:
        sitk.ProcessObject.SetGlobalDefaultNumberOfThreads(before)


def _same(one, other) -> bool:
    try:
        if isinstance(one, pd.DataFrame):
            pd.testing.assert_frame_equal(one, other)
        else:
            pd.testing.assert_frame_equal(one.table, other.table)
            for key, values in one.per_bootstrap.items():
                np.testing.assert_array_equal(values, other.per_bootstrap[key])
        return True
    except AssertionError:
        return False


def _planted(patients: int, features: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    X = pd.DataFrame(rng.normal(size=(patients, features)), columns=[f"f{i}" for i in range(features)])
    y = (X["f0"] - X["f1"] + rng.normal(0, 0.8, patients) > 0).astype(int).to_numpy()
    return X, y


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--patients", type=int, default=24, help="synthetic cohort size (default 24)")
    parser.add_argument("--size", type=int, nargs=3, default=[96, 96, 32],
                        help="synthetic image size in voxels x y z (default 96 96 32)")
    parser.add_argument("--perturbations", type=int, default=2,
                        help="perturbed copies per patient, as for robustness (default 2)")
    parser.add_argument("--preset", default="pyradiomics-default", help="(default pyradiomics-default)")
    parser.add_argument("--grid-patients", type=int, default=100, help="(default 100)")
    parser.add_argument("--features", type=int, default=200, help="(default 200)")
    parser.add_argument("--draws", type=int, default=100, help="bootstrap draws per grid cell (default 100)")
    parser.add_argument("--selectors", nargs="+", default=["chi2", "wilcoxon", "nca", "relieff", "inffs"])
    parser.add_argument("--classifiers", nargs="+", default=["lda", "svm", "knn", "nb", "rf"])
    parser.add_argument("--repeats", type=int, default=3, help="(default 3)")
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2], help="(default 1 2)")
    parser.add_argument("--skip-cohort", action="store_true")
    parser.add_argument("--skip-grid", action="store_true")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as folder:
        cohort = load_manifest(write_cohort(Path(folder) / "cohort", n_patients=args.patients, seed=0,
                                            size=tuple(args.size)))
        small = load_manifest(write_cohort(Path(folder) / "warm-up", n_patients=4, seed=1))
        X, y = _planted(args.grid_patients, args.features)
        jobs = {}  # name -> (the timed job, its small warm-up)
        if not args.skip_cohort:
            def cohort_job(execution, which=cohort, perturbations=args.perturbations):
                return extract_cohort(which, image="CT", mask="GTVp", settings=args.preset,
                                      perturbations=perturbations, execution=execution)

            jobs[f"cohort ({args.patients} x {args.perturbations + 1} images, {'x'.join(map(str, args.size))})"] = (
                cohort_job, lambda execution: cohort_job(execution, small, 0))
        if not args.skip_grid:
            def grid_job(execution, draws=args.draws):
                return run_grid(X, y, args.selectors, args.classifiers, k=10, n_bootstrap=draws, execution=execution)

            jobs[f"grid ({args.grid_patients}x{args.features}, {len(args.selectors)}x{len(args.classifiers)}, "
                 f"{args.draws} draws)"] = (grid_job, lambda execution: grid_job(execution, 2))
        # every configuration is set up and warmed first, then the repeats go round all of them in turn, so a
        # slow spell of the machine (a shared VM's neighbours) falls on every configuration alike
        startup, configs = {}, []
        with contextlib.ExitStack() as stack:
            for kind in ("local", "dask"):
                for workers in args.workers:
                    start = time.perf_counter()
                    execution = stack.enter_context(
                        Execution(f"local-cluster:{workers}") if kind == "dask" else Execution(workers=workers))
                    if kind == "dask":
                        execution.client.wait_for_workers(workers)
                        startup[workers] = time.perf_counter() - start
                    configs.append((kind, workers, execution))
            for kind, workers, execution in configs:
                with _one_core(workers, kind):
                    for job, warm in jobs.values():
                        warm(execution)
            seconds, results = {}, {}
            for repeat in range(args.repeats):
                for kind, workers, execution in configs:
                    with _one_core(workers, kind):
                        for name, (job, _) in jobs.items():
                            start = time.perf_counter()
                            results[name, kind, workers] = job(execution)
                            seconds.setdefault((name, kind, workers), []).append(time.perf_counter() - start)
                            print(f"  round {repeat + 1}: {name}, {kind}, {workers} worker(s): "
                                  f"{seconds[name, kind, workers][-1]:.1f} s", file=sys.stderr, flush=True)
        rows = [{"task": name, "execution": kind, "workers": workers, "seconds": statistics.median(times),
                 "result": results[name, kind, workers]} for (name, kind, workers), times in seconds.items()]
    print(f"median of {args.repeats} round(s) over all configurations after a small warm-up job, one core per "
          "worker; "
          "LocalCluster start-up: "
          + ", ".join(f"{w} worker(s) {s:.1f} s" for w, s in startup.items()))
    print(f"{'task':<48} {'execution':<9} {'workers':>7} {'seconds':>9} {'speed-up':>9} {'same kind':>9} "
          f"{'dask/local':>10} {'identical':>9}")
    for row in rows:
        base = next(r for r in rows if r["task"] == row["task"] and r["execution"] == "local"
                    and r["workers"] == args.workers[0])
        local = next(r for r in rows if r["task"] == row["task"] and r["execution"] == "local"
                     and r["workers"] == row["workers"])
        first = next(r for r in rows if r["task"] == row["task"] and r["execution"] == row["execution"]
                     and r["workers"] == args.workers[0])
        overhead = f"{row['seconds'] / local['seconds'] - 1:+.0%}" if row["execution"] == "dask" else ""
        print(f"{row['task']:<48} {row['execution']:<9} {row['workers']:>7} {row['seconds']:>9.2f} "
              f"{base['seconds'] / row['seconds']:>8.2f}x {first['seconds'] / row['seconds']:>8.2f}x {overhead:>10} "
              f"{'yes' if _same(base['result'], row['result']) else 'NO':>9}")


if __name__ == "__main__":
    main()
