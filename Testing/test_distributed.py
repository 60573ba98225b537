"""Cohort work on a real dask.distributed LocalCluster (2 single-threaded worker processes): the same tables as one
process, progress as tasks finish, a killed worker loses and duplicates nothing, Ctrl-C writes nothing."""

from __future__ import annotations

import importlib.util
import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pandas as pd
import pytest

from rtresponse.errors import InputError
from rtresponse.execution import Execution, check_scheduler, resolve

from conftest import child_env, cohort_with_empty_mask, needs_dask, planted_evaluation_inputs

SMALL = {"imageType": {"Original": {}}, "featureClass": {"firstorder": None, "shape": ["VoxelVolume"]},
         "setting": {"binWidth": 25}}


# ------------------------------------------------------------------ without Dask

def test_scheduler_setting_forms_are_checked_before_any_connection(tmp_path):
    assert check_scheduler(None) == check_scheduler("local") == check_scheduler("  ") == ""
    assert check_scheduler("local-cluster:3") == "local-cluster:3"
    assert check_scheduler("tcp://10.0.0.5:8786") == "tcp://10.0.0.5:8786"
    assert check_scheduler("head-node:8786") == "head-node:8786"
    for bad in ("local-cluster:0", "local-cluster:x", "cluster", "missing.yaml"):
        with pytest.raises(InputError):
            check_scheduler(bad)
    config = tmp_path / "cluster.yaml"
    config.write_text("cluster: local\nworkers: 2\n")
    assert check_scheduler(str(config)) == str(config)
    runner, owned = resolve(None, 3)
    assert (runner.kind, runner.workers, runner.parallel, owned) == ("local", 3, True, True)
    assert resolve(runner)[1] is False


def test_local_execution_runs_in_task_order_and_cancels():
    calls = []
    result = Execution().map(lambda a, b, *, c: calls.append(a) or a * b + c, [(1, 2), (3, 4), (5, 6)],
                             shared={"c": 1}, order=[2, 0, 1])
    assert result == [3, 13, 31] and calls == [5, 1, 3]  # started in the given order, returned in task order
    from rtresponse.errors import Cancelled

    with pytest.raises(Cancelled, match="stop"):
        Execution().map(lambda a: a, [(1,), (2,)], should_cancel=lambda: True, cancelled="stop")


def test_the_environment_variable_is_the_commands_default(monkeypatch):
    from rtresponse.cli import build_parser
    from rtresponse.settings import Settings

    monkeypatch.setenv("RTRESPONSE_SCHEDULER", "tcp://scheduler.example:8786")
    args = build_parser().parse_args(["features", "--kind", "handcrafted", "--manifest", "m.csv", "--image", "CT",
                                      "--mask", "GTVp", "--out", "f.csv"])
    assert args.scheduler == "tcp://scheduler.example:8786"
    settings = Settings()
    assert settings.scheduler == "tcp://scheduler.example:8786"
    assert settings.job_environment() == {"RTRESPONSE_SCHEDULER": "tcp://scheduler.example:8786"}
    with pytest.raises(InputError, match="local-cluster"):
        Settings(scheduler="local-cluster:none")


def test_a_dask_setting_without_dask_installed_says_what_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "distributed", None)  # import distributed -> ImportError
    with pytest.raises(InputError, match=r"rtresponse\[distributed\]"):
        Execution("local-cluster:1").client


# ------------------------------------------------------------------ on a LocalCluster

@pytest.fixture(scope="module")
def cohort(synthetic_cohort, tmp_path_factory):
    """The synthetic cohort with one patient's mask emptied (its row must say so, the others complete)."""
    return cohort_with_empty_mask(synthetic_cohort,
                                  tmp_path_factory.mktemp("distributed") / "cohort",
                                  "P002", "GTVp_boost")


@pytest.fixture(scope="module")
def sequential(cohort):
    from rtresponse.features.handcrafted import extract_cohort

    return extract_cohort(cohort, image="CT", mask="GTVp_boost", settings=SMALL, perturbations=1)


@pytest.fixture(scope="module")
def planted():
    rng = np.random.default_rng(0)
    X = pd.DataFrame(rng.normal(size=(40, 12)), columns=[f"f{i}" for i in range(12)])
    X.iloc[3, 5] = np.nan
    y = (X["f3"] - X["f7"] + rng.normal(0, 0.6, 40) > 0).astype(int).to_numpy()
    return X, y


GRID = dict(selectors=("wilcoxon", "chi2"), classifiers=("lda", "svm", "nb"), k=3, n_bootstrap=8, undersample=2)


@pytest.fixture(scope="module")
def sequential_grid(planted):
    from rtresponse.models.grid import run_grid

    return run_grid(*planted, **GRID)


def _same_grid(one, other):
    pd.testing.assert_frame_equal(one.table, other.table)
    assert one.per_bootstrap.keys() == other.per_bootstrap.keys()
    for key, values in one.per_bootstrap.items():
        np.testing.assert_array_equal(values, other.per_bootstrap[key])


@needs_dask
def test_a_local_cluster_hands_out_tasks_as_local_workers_take_them(client):
    """One task per single-threaded worker at a time (none queued behind a long task while a worker idles), glibc
    left to reuse freed arrays (Dask's MALLOC_TRIM_THRESHOLD_ unset), as in local worker processes, no
    statistical profiler sampling every task and event loops ticking every second."""
    import dask
    import distributed

    assert client.run_on_scheduler(lambda dask_scheduler: dask_scheduler.WORKER_SATURATION) == 1.0
    assert set(client.run(lambda: os.environ.get("MALLOC_TRIM_THRESHOLD_")).values()) == {None}
    assert set(client.run(lambda: os.environ.get("OMP_NUM_THREADS")).values()) == {"1"}  # Dask's other settings kept
    assert set(client.run(lambda dask_worker: "profile" in dask_worker.periodic_callbacks).values()) == {False}
    assert set(client.run(lambda dask_worker: dask_worker._tick_interval).values()) == {1.0}
    # a cluster this module did not start is left as its owner configured it
    with distributed.LocalCluster(n_workers=1, threads_per_worker=1, dashboard_address=":0") as cluster, \
            distributed.Client(cluster, set_as_default=False) as theirs:
        assert theirs.run_on_scheduler(lambda dask_scheduler: dask_scheduler.WORKER_SATURATION) == \
            dask.config.get("distributed.scheduler.worker-saturation") != 1.0
        assert set(theirs.run(lambda dask_worker: "profile" in dask_worker.periodic_callbacks).values()) == {True}


@needs_dask
def test_cohort_features_on_the_cluster_equal_one_process(client, cohort, sequential):
    from rtresponse.features.handcrafted import extract_cohort

    reported = []
    spread = extract_cohort(cohort, image="CT", mask="GTVp_boost", settings=SMALL, perturbations=1,
                            execution=client, progress=lambda done, total: reported.append((done, total)))
    pd.testing.assert_frame_equal(sequential, spread)
    assert sequential.loc[("P002", "original"), "status"] == "mask is empty"  # isolated, as in one process
    assert (sequential.drop(index="P002", level=0)["status"] == "ok").all()
    n = len(cohort.patient_ids)
    assert reported == [(done, n) for done in range(1, n + 1)]  # one step per finished patient
    assert spread.attrs["provenance"]["execution"]["kind"] == "dask"


@needs_dask
def test_a_small_grid_on_the_cluster_equals_one_process(client, planted, sequential_grid):
    from rtresponse.models.grid import run_grid

    reported = []
    _same_grid(sequential_grid, run_grid(*planted, execution=client, progress=lambda d, t: reported.append(d), **GRID))
    assert reported == list(range(0, 2 * 2 * 3 + 1))


def _kill_a_busy_worker(client, killed: list) -> None:
    """SIGKILL the process of a worker that is running a task now (once)."""
    if killed:
        return
    pids = client.run(os.getpid)
    for _ in range(200):
        busy = [address for address, keys in client.processing().items() if keys and address in pids]
        if busy:
            os.kill(pids[busy[0]], signal.SIGKILL)
            killed.append(busy[0])
            return
        time.sleep(0.01)


@needs_dask
def test_a_worker_killed_during_the_run_still_gives_the_identical_table(client, cohort, sequential, planted,
                                                                        sequential_grid):
    from rtresponse.features.handcrafted import extract_cohort
    from rtresponse.models.grid import run_grid

    killed: list = []
    reported = []

    def progress(done, total):
        reported.append(done)
        if done == 1:
            _kill_a_busy_worker(client, killed)

    spread = extract_cohort(cohort, image="CT", mask="GTVp_boost", settings=SMALL, perturbations=1,
                            execution=client, progress=progress)
    assert killed, "no worker was busy to kill"
    pd.testing.assert_frame_equal(sequential, spread)  # every row once, none lost
    assert reported == list(range(1, len(cohort.patient_ids) + 1))
    client.wait_for_workers(2, timeout=60)  # the nanny restarts the killed worker

    killed.clear()  # the grid's shared data lived on the killed worker too: replicated, so nothing is lost
    grid = run_grid(*planted, execution=client, progress=lambda d, t: d == 1 and _kill_a_busy_worker(client, killed),
                    **GRID)
    assert killed, "no worker was busy to kill"
    _same_grid(sequential_grid, grid)
    client.wait_for_workers(2, timeout=60)


@needs_dask
def test_ctrl_c_cancels_the_cluster_run_and_writes_nothing(cohort, tmp_path):
    psutil = pytest.importorskip("psutil")
    out = tmp_path / "out" / "features.csv"
    out.parent.mkdir()
    command = [sys.executable, "-m", "rtresponse", "features", "--kind", "handcrafted", "--manifest",
               str(cohort.path), "--image", "CT", "--mask", "GTVp", "--preset", "pyradiomics-default",
               "--perturbations", "48", "--scheduler", "local-cluster:2", "--progress", "jsonl", "--out", str(out)]
    # 49 images a patient: the run is still going when Ctrl-C comes (with 3, and once with 17 after the cluster's
    # workers got faster, it ended first on a busy machine: exit 0)
    child = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=child_env())
    try:
        events = []
        for line in child.stdout:
            events.append(json.loads(line))
            if events[-1]["event"] == "progress" and events[-1]["done"] >= 1:
                break
        assert events and events[-1]["event"] == "progress", (events, child.stderr.read())
        workers = psutil.Process(child.pid).children(recursive=True)
        assert workers, "the cluster's worker processes"
        child.send_signal(signal.SIGINT)  # Ctrl-C
        rest, errors = child.communicate(timeout=60)
    finally:
        if child.poll() is None:
            child.kill()
    assert child.returncode == 130, errors
    assert json.loads(rest.strip().splitlines()[-1])["event"] == "error"
    assert "nothing was written" in errors
    assert list(out.parent.iterdir()) == []  # neither the table nor a staging leftover
    gone, alive = psutil.wait_procs(workers, timeout=30)
    assert not alive, f"worker processes left running: {alive}"


@needs_dask
def test_evaluate_sent_to_a_scheduler_address_writes_the_same_results(client, tmp_path, monkeypatch):
    from rtresponse.cli import main

    planted_evaluation_inputs(tmp_path, 40)
    common = ["evaluate", "--features", str(tmp_path / "features.csv"), "--manifest", str(tmp_path / "manifest.csv"),
              "--outcome", "response", "--selectors", "wilcoxon", "--classifiers", "lda", "nb", "--k", "3",
              "--n-bootstrap", "10", "--progress", "none"]
    assert main(common + ["--out", str(tmp_path / "here")]) == 0
    monkeypatch.setenv("RTRESPONSE_SCHEDULER", client.scheduler.address)  # the default of --scheduler
    assert main(common + ["--out", str(tmp_path / "there")]) == 0
    pd.testing.assert_frame_equal(pd.read_csv(tmp_path / "here" / "results.csv"),
                                  pd.read_csv(tmp_path / "there" / "results.csv"))
    assert len(client.scheduler_info()["workers"]) == 2  # the run closed its own client, not the cluster


def _scaled(value, *, factor):
    return value * factor


@needs_dask
def test_a_cluster_config_file_starts_a_cluster_for_the_run_and_closes_it(tmp_path):
    config = tmp_path / "cluster.yaml"
    config.write_text("cluster: local\nworkers: 1\nmemory_limit: 1GiB\n")
    with Execution(str(config)) as where:
        assert where.map(_scaled, [(1,), (2,), (3,)], shared={"factor": 10}) == [10, 20, 30]
        client = where.client
        assert where.describe() == {"kind": "dask", "scheduler": str(config), "workers": 1}
    assert client.status == "closed"
    if importlib.util.find_spec("dask_jobqueue") is None:
        config.write_text("cluster: slurm\nworkers: 2\ncores: 4\n")
        with pytest.raises(InputError, match="needs dask-jobqueue"):
            Execution(str(config)).client
