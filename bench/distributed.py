"""Cohort extraction and the selector x classifier grid: local processes against a Dask LocalCluster. Prints a table.

Runs the same handcrafted cohort extraction (a synthetic cohort written once) and the same 0.632+ bootstrap grid
(a planted-signal feature matrix) with
  - local, 1 worker (one process) and local, 2 workers (joblib processes), and
  - a dask.distributed LocalCluster of 1 and of 2 single-threaded worker processes (``--scheduler local-cluster:N``),
and prints, for each, the median seconds (wall clock) and CPU seconds (the configuration's processes and all their
children: on a shared VM the CPU time does not count the time the machine was taken away), the speed-up over
local with 1 worker and over the same kind with 1 worker, the overhead of Dask over local with as many workers,
and whether the table is identical to local with 1 worker.

How it keeps the comparison fair:
  - each configuration lives in a process of its own for the whole benchmark (a local run never shares its process
    with a Dask client's threads), started one after the other; a cluster's start-up is printed apart;
  - one core per worker everywhere: the local 1-worker process is held to one BLAS, OpenMP and ITK thread (as
    each joblib or Dask worker process is), so the speed-up is that of the workers, not of threads inside one;
  - each configuration first runs a small warm-up job (imports in the worker processes), untimed;
  - while one configuration runs, the others' processes are stopped (SIGSTOP): an idle cluster's event loops would
    otherwise take a share of the cores from the running one (~8 % of a core for the two idle clusters);
  - each round runs each job in all configurations one after the other (in a rotated order each round), so a
    slow spell of the machine falls on all of them alike; the Dask overhead is the median over rounds of the ratio of
    the Dask run to the local run with as many workers in the same round.
Last, it measures what two workers can gain on this machine at best: a fixed piece of work alone and in two
processes at once (two virtual cores that share a physical core, caches or a turbo budget give less than 2x).

Usage: python bench/distributed.py [--patients 24] [--size 96 96 32] [--perturbations 2]
       [--preset pyradiomics-default] [--grid-patients 100] [--features 100] [--draws 50] [--rounds 5]
       [--workers 1 2] [--skip-cohort] [--skip-grid]
A quick check that it runs: python bench/distributed.py --patients 4 --size 64 64 16 --perturbations 0
--grid-patients 30 --features 10 --draws 5 --selectors chi2 --classifiers lda nb --rounds 1.
Run it alone on the machine: other load distorts every speed-up.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import pickle
import statistics
import subprocess
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

KINDS = ("local", "dask")


def _options() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--patients", type=int, default=24, help="synthetic cohort size (default 24)")
    parser.add_argument("--size", type=int, nargs=3, default=[96, 96, 32],
                        help="synthetic image size in voxels x y z (default 96 96 32)")
    parser.add_argument("--perturbations", type=int, default=2,
                        help="perturbed copies per patient, as for robustness (default 2)")
    parser.add_argument("--preset", default="pyradiomics-default", help="(default pyradiomics-default)")
    parser.add_argument("--grid-patients", type=int, default=100, help="(default 100)")
    parser.add_argument("--features", type=int, default=100, help="(default 100)")
    parser.add_argument("--draws", type=int, default=50, help="bootstrap draws per grid cell (default 50)")
    parser.add_argument("--selectors", nargs="+", default=["chi2", "wilcoxon", "nca", "relieff", "inffs"],
                        help="(default all five)")
    parser.add_argument("--classifiers", nargs="+", default=["lda", "svm", "knn", "nb", "rf"],
                        help="(default all five)")
    parser.add_argument("--rounds", type=int, default=5, help="timed runs of each job in each configuration "
                        "(default 5)")
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2], help="(default 1 2)")
    parser.add_argument("--skip-cohort", action="store_true")
    parser.add_argument("--skip-grid", action="store_true")
    parser.add_argument("--serve", nargs=2, metavar=("KIND", "WORKERS"), help=argparse.SUPPRESS)
    parser.add_argument("--data", type=Path, help=argparse.SUPPRESS)
    return parser


# what Dask's nanny (distributed.nanny.pre-spawn-environ) and joblib give each worker process: one thread for BLAS
# and OpenMP. Set before the process starts, so it also holds for libraries loaded late (scikit-learn's OpenMP).
ONE_CORE = {"OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


def _environment(kind: str, workers: int) -> dict:
    """The environment of a configuration's process: the local run's only worker is held to one core too."""
    return {**os.environ, **ONE_CORE} if (kind, workers) == ("local", 1) else dict(os.environ)


def _planted(patients: int, features: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    X = pd.DataFrame(rng.normal(size=(patients, features)), columns=[f"f{i}" for i in range(features)])
    y = (X["f0"] - X["f1"] + rng.normal(0, 0.8, patients) > 0).astype(int).to_numpy()
    return X, y


def _jobs(args) -> dict:
    """job name -> (the timed job, its small untimed warm-up), each a function of an Execution."""
    jobs = {}
    if not args.skip_cohort:
        cohort, small = (load_manifest(args.data / "cohort" / "manifest.csv"),
                         load_manifest(args.data / "warm-up" / "manifest.csv"))

        def cohort_job(execution, which=cohort, perturbations=args.perturbations):
            return extract_cohort(which, image="CT", mask="GTVp", settings=args.preset,
                                  perturbations=perturbations, execution=execution)

        jobs["cohort"] = (cohort_job, lambda execution: cohort_job(execution, small, 0))
    if not args.skip_grid:
        X, y = _planted(args.grid_patients, args.features)

        def grid_job(execution, draws=args.draws):
            return run_grid(X, y, args.selectors, args.classifiers, k=10, n_bootstrap=draws, execution=execution)

        jobs["grid"] = (grid_job, lambda execution: grid_job(execution, 2))
    return jobs


def _cpu_seconds() -> float:
    """CPU seconds of this process and every live descendant (worker processes) so far."""
    import psutil

    me = psutil.Process()
    total = 0.0
    for process in [me, *me.children(recursive=True)]:
        with contextlib.suppress(psutil.Error):
            times = process.cpu_times()
            total += times.user + times.system
    return total


def serve(args) -> None:
    """One configuration, in a process of its own: set up, warm up, then run the jobs the parent names on stdin."""
    kind, workers = args.serve[0], int(args.serve[1])
    start = time.perf_counter()
    with contextlib.ExitStack() as stack:
        execution = stack.enter_context(
            Execution(f"local-cluster:{workers}") if kind == "dask" else Execution(workers=workers))
        if kind == "dask":
            execution.client.wait_for_workers(workers)
        startup = time.perf_counter() - start
        if (kind, workers) == ("local", 1):  # one ITK thread, as in a worker process (execution.task_threads)
            import SimpleITK as sitk

            sitk.ProcessObject.SetGlobalDefaultNumberOfThreads(1)
        jobs = _jobs(args)
        for _, warm in jobs.values():
            warm(execution)
        print(json.dumps({"startup": startup}), flush=True)
        for line in sys.stdin:
            name = line.strip()
            if name not in jobs:
                break
            cpu, start = _cpu_seconds(), time.perf_counter()
            result = jobs[name][0](execution)
            seconds, cpu = time.perf_counter() - start, _cpu_seconds() - cpu
            with open(args.data / f"{name}-{kind}-{workers}.pickle", "wb") as file:
                pickle.dump(result, file)
            print(json.dumps({"seconds": seconds, "cpu": cpu}), flush=True)


def _fixed_work(_=None) -> float:
    """A fixed piece of CPU work like the tasks' (Python loops, small matrix products, sorting image-sized
    arrays); returns its seconds."""
    from threadpoolctl import threadpool_limits

    with threadpool_limits(1):  # one core, as a worker
        start = time.perf_counter()
        rng = np.random.default_rng(0)
        total = 0
        for _ in range(30):
            for k in range(300_000):
                total += k
            matrix = rng.normal(size=(100, 60))
            for _ in range(200):
                (matrix.T @ matrix).sum()
            np.sort(rng.normal(size=128 * 128 * 32))
        return time.perf_counter() - start


def machine_ceiling(repeats: int = 9) -> tuple[float, float]:
    """(seconds of the fixed work alone, alone / at the same time as a copy in a second process), medians: what
    two workers can gain on this machine at best, whatever runs them (1.0 = two cores as good as one each)."""
    from concurrent.futures import ProcessPoolExecutor

    with ProcessPoolExecutor(2) as pool:
        list(pool.map(_fixed_work, range(2)))  # both processes started and warm
        alone, together = [], []
        for _ in range(repeats):
            alone.append(pool.submit(_fixed_work).result())
            together.append(max(pool.map(_fixed_work, range(2))))
    return statistics.median(alone), statistics.median(a / t for a, t in zip(alone, together))


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


@contextlib.contextmanager
def _paused(processes: list):
    """The other configurations' processes and their workers stopped (SIGSTOP) meanwhile: idle, a LocalCluster's
    scheduler, nannies and workers still take ~3-5 % of a core (per cluster), which two busy workers would give up.
    Each stop is well inside Dask's timeouts (a worker is dropped after 5 minutes without a heartbeat)."""
    import signal

    import psutil

    stopped = []
    try:
        for process in processes:
            parent = psutil.Process(process.pid)
            for member in [parent, *parent.children(recursive=True)]:
                with contextlib.suppress(psutil.Error):
                    member.send_signal(signal.SIGSTOP)
                    stopped.append(member)
        yield
    finally:
        for member in stopped:
            with contextlib.suppress(psutil.Error):
                member.send_signal(signal.SIGCONT)


def _ask(process: subprocess.Popen) -> dict:
    line = process.stdout.readline()
    if not line:
        raise SystemExit(f"a benchmark configuration stopped (exit {process.wait()}); its messages are above")
    return json.loads(line)


def main() -> None:
    args = _options().parse_args()
    if args.serve:
        serve(args)
        return
    with tempfile.TemporaryDirectory() as folder:
        data = Path(folder)
        if not args.skip_cohort:  # written once; every configuration's workers read the same files
            write_cohort(data / "cohort", n_patients=args.patients, seed=0, size=tuple(args.size))
            write_cohort(data / "warm-up", n_patients=4, seed=1)
        names = {}
        if not args.skip_cohort:
            names["cohort"] = (f"cohort ({args.patients} x {args.perturbations + 1} images, "
                               f"{'x'.join(map(str, args.size))})")
        if not args.skip_grid:
            names["grid"] = (f"grid ({args.grid_patients}x{args.features}, {len(args.selectors)}x"
                             f"{len(args.classifiers)}, {args.draws} draws)")
        configs = [(kind, workers) for kind in KINDS for workers in args.workers]
        processes, startup = {}, {}
        try:
            for kind, workers in configs:  # one at a time, so no start-up is timed while another is running
                processes[kind, workers] = subprocess.Popen(
                    [sys.executable, __file__, *sys.argv[1:], "--serve", kind, str(workers), "--data", str(data)],
                    stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, encoding="utf-8",
                    env=_environment(kind, workers))
                startup[kind, workers] = _ask(processes[kind, workers])["startup"]
            runs = {}  # (job, kind, workers) -> [{"seconds", "cpu"} per round]
            for round_ in range(args.rounds):
                order = configs[round_ % len(configs):] + configs[:round_ % len(configs)]
                for name in names:  # each job in every configuration, one after the other: pairs close in time
                    for kind, workers in order:
                        process = processes[kind, workers]
                        with _paused([other for config, other in processes.items() if config != (kind, workers)]):
                            process.stdin.write(name + "\n")
                            process.stdin.flush()
                            runs.setdefault((name, kind, workers), []).append(_ask(process))
                        print(f"  round {round_ + 1}: {name}, {kind}, {workers} worker(s): "
                              f"{runs[name, kind, workers][-1]['seconds']:.1f} s", file=sys.stderr, flush=True)
        finally:
            for process in processes.values():
                with contextlib.suppress(OSError):
                    process.stdin.close()
            for process in processes.values():
                process.wait()
        results = {key: pickle.loads((data / f"{key[0]}-{key[1]}-{key[2]}.pickle").read_bytes()) for key in runs}
    _table(args, names, runs, results, startup)
    alone, ratio = machine_ceiling()
    print(f"this machine: a fixed piece of work ({alone:.1f} s alone) in two processes at once runs at {ratio:.2f}x "
          f"its speed alone, so 2 workers can be at most {2 * ratio:.2f}x as fast as 1")


def _table(args, names: dict, runs: dict, results: dict, startup: dict) -> None:
    def median(key, what="seconds"):
        return statistics.median(run[what] for run in runs[key])

    first = args.workers[0]
    print(f"median of {args.rounds} round(s), configurations in turn, each in its own process after a small "
          "warm-up job, one core per worker; start-up: "
          + ", ".join(f"{kind}-{w} {s:.1f} s" for (kind, w), s in startup.items()))
    print(f"{'task':<44} {'execution':<9} {'workers':>7} {'seconds':>8} {'cpu s':>8} {'speed-up':>9} "
          f"{'same kind':>9} {'dask/local':>10} {'cpu d/l':>8} {'identical':>9}")
    for name, title in names.items():
        for kind in KINDS:
            for workers in args.workers:
                key, local = (name, kind, workers), (name, "local", workers)
                overhead = cpu_overhead = ""
                if kind == "dask":  # paired by round: the same slow spell falls on both
                    overhead = f"{statistics.median(_ratios(runs[key], runs[local])):+.0%}"
                    cpu_overhead = f"{statistics.median(_ratios(runs[key], runs[local], 'cpu')):+.0%}"
                same = _same(results[name, "local", first], results[key])
                print(f"{title:<44} {kind:<9} {workers:>7} {median(key):>8.2f} {median(key, 'cpu'):>8.2f} "
                      f"{median((name, 'local', first)) / median(key):>8.2f}x "
                      f"{median((name, kind, first)) / median(key):>8.2f}x {overhead:>10} {cpu_overhead:>8} "
                      f"{'yes' if same else 'NO':>9}")
    print("dask/local in each round (seconds), for the spread:")
    for name in names:
        for workers in args.workers:
            ratios = _ratios(runs[name, "dask", workers], runs[name, "local", workers])
            print(f"  {name}, {workers} worker(s): " + " ".join(f"{ratio:+.0%}" for ratio in ratios))


def _ratios(dask_runs: list, local_runs: list, what: str = "seconds") -> list:
    """Dask over local - 1, round by round."""
    return [d[what] / l[what] - 1 for d, l in zip(dask_runs, local_runs)]


if __name__ == "__main__":
    main()
