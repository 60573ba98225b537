"""Where cohort-scale work runs: local processes (the default) or a Dask cluster, with the same results.

One setting chooses it (``--scheduler`` on the cohort commands, ``RTRESPONSE_SCHEDULER``, the hub's setting):

``local`` (or empty)
    this machine: ``workers`` joblib processes (threads inside 3D Slicer), or this process with one worker;
``local-cluster`` / ``local-cluster:N``
    a ``dask.distributed.LocalCluster`` of N single-threaded worker processes started for the run (all cores
    when N is left out) and closed after it;
``tcp://host:8786`` (any Dask address)
    the Dask scheduler of a cluster already running (SLURM, PBS, Kubernetes, ``dask scheduler`` by hand);
``cluster.yaml``
    a small config file that starts a cluster for the run: ``cluster: local`` (LocalCluster) or ``slurm``,
    ``pbs``, ``sge``, ``lsf`` (dask-jobqueue), ``workers: N`` (how many to scale to) and the cluster class's
    own keyword arguments (``cores``, ``memory``, ``queue``, ``walltime``, ...); or ``address: tcp://...``.

Every operation splits into tasks whose results depend only on their arguments (seeds are per task, never per
worker), so where a task runs never changes a number. :meth:`Execution.map` submits the tasks, reports progress
as each finishes, cancels what was submitted on Cancel or Ctrl-C, and returns the results in task order. Large
inputs shared by all tasks (the grid's feature matrix) are scattered to the workers once (replicated, so a
worker lost mid-run does not lose them), never sent with each task. A task whose worker dies is rerun
elsewhere by Dask; a result is taken once per task, so a lost worker neither loses nor duplicates a row.

Dask (``pip install 'rtresponse[distributed]'``) is imported only when a Dask setting is used.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

from .errors import Cancelled, InputError
from .settings import SCHEDULER_ENV  # "RTRESPONSE_SCHEDULER"

LOCAL, DASK = "local", "dask"
LOCAL_CLUSTER = "local-cluster"
# A LocalCluster started here runs its tasks as local workers do. worker-saturation 1.0: a worker is given its next
# task when it finishes one, so no task waits behind a long one on a busy worker while another worker idles (Dask's
# default 1.1 gives a single-threaded worker two), and the costliest-first order holds. No MALLOC_TRIM_THRESHOLD_:
# Dask sets it so workers hand freed memory back to the OS at once, which also fixes glibc's mmap threshold, so
# every image-sized array is mapped anew and page-faulted in (+0.5 s system time in 6.5 s of feature extraction,
# measured); local processes keep freed arrays for reuse. No statistical profiler: it samples the running task's
# stack every 10 ms on the worker's event-loop thread, taking the GIL (that loop used 1.5-2 s of CPU in a 22 s
# grid, measured; 0.6 s without it); it only feeds the dashboard's profile page. A 1 s tick: the event loops'
# blocked-loop check ran every 20 ms in the scheduler, nannies, client and each worker (0.9 s of CPU in a 12 s grid
# on 2 workers in this process, 0.45 s at 1 s; it only warns when a loop was blocked for 3 s).
LOCAL_CLUSTER_CONFIG = {"distributed.scheduler.worker-saturation": 1.0,
                        "distributed.nanny.pre-spawn-environ.MALLOC_TRIM_THRESHOLD_": None,
                        "distributed.worker.profile.enabled": False,
                        "distributed.admin.tick.interval": "1s"}
JOBQUEUE = {"slurm": "SLURMCluster", "pbs": "PBSCluster", "sge": "SGECluster", "lsf": "LSFCluster",
            "htcondor": "HTCondorCluster", "oar": "OARCluster", "moab": "MoabCluster"}


def in_slicer() -> bool:
    """True inside the 3D Slicer application (whose executable cannot host loky worker processes)."""
    return getattr(sys.modules.get("slicer"), "app", None) is not None


def default_scheduler() -> str:
    """The scheduler setting from the environment (``RTRESPONSE_SCHEDULER``), ``""`` (local) when unset."""
    return os.environ.get(SCHEDULER_ENV, "").strip()


def check_scheduler(text: str | None) -> str:
    """The setting normalised, or an InputError saying what forms are accepted (no connection is made)."""
    text = ("" if text is None else str(text)).strip()
    if text.lower() in ("", LOCAL):
        return ""
    if text.startswith(LOCAL_CLUSTER):
        rest = text[len(LOCAL_CLUSTER):]
        if rest and not (rest.startswith(":") and rest[1:].isdigit() and int(rest[1:]) >= 1):
            raise InputError(f"scheduler '{text}': write local-cluster or local-cluster:N with N >= 1 workers")
        return text
    if text.lower().endswith((".yaml", ".yml")):
        if not Path(text).expanduser().is_file():
            raise InputError("cluster config file not found", path=text)
        return text
    if "://" in text or (":" in text and text.rsplit(":", 1)[1].isdigit()):
        return text
    raise InputError(f"scheduler '{text}' is not 'local', 'local-cluster[:N]', a Dask address "
                     "(tcp://host:8786) or a cluster config file (.yaml)")


def _require_distributed():
    try:
        import distributed  # noqa: F401
    except ImportError:
        raise InputError("a Dask scheduler needs dask.distributed: pip install 'rtresponse[distributed]' "
                         "(or leave the scheduler setting empty to run locally)") from None
    import distributed

    return distributed


class Execution:
    """Where tasks run. Use as a context manager when it may start a cluster (it closes what it started).

    ``Execution()`` runs in this process; ``Execution(workers=4)`` in 4 local processes;
    ``Execution("local-cluster:2")``, ``Execution("tcp://host:8786")``, ``Execution("cluster.yaml")`` or
    ``Execution(client=dask_client)`` on Dask.
    """

    def __init__(self, scheduler: str | None = None, workers: int = 1, client: Any = None):
        self.scheduler = check_scheduler(scheduler) if client is None else "client"
        self.workers = max(1, int(workers or 1))
        self._client = client
        self._owned: list = []  # cluster / client this object started, closed by close()

    # ------------------------------------------------------------------ what and where
    @property
    def kind(self) -> str:
        return DASK if self._client is not None or self.scheduler else LOCAL

    @property
    def parallel(self) -> bool:
        return self.kind == DASK or self.workers > 1

    def describe(self) -> dict:
        """For provenance records: the kind and where (never credentials: addresses only)."""
        if self.kind == LOCAL:
            return {"kind": LOCAL, "workers": self.workers}
        found = {"kind": DASK, "scheduler": self.scheduler}
        if self._client is not None:
            try:
                found["workers"] = len(self._client.scheduler_info(n_workers=-1).get("workers", {}))
            except Exception:  # noqa: BLE001 - a courtesy
                pass
        return found

    @property
    def client(self):
        """The dask.distributed Client (connecting or starting the cluster on first use)."""
        if self.kind != DASK:
            raise RuntimeError("a local execution has no Dask client")
        if self._client is None:
            self._client = self._connect()
        return self._client

    def _connect(self):
        distributed = _require_distributed()
        text = self.scheduler
        if text.startswith(LOCAL_CLUSTER):
            count = int(text.split(":", 1)[1]) if ":" in text else (os.cpu_count() or 1)
            return self._start(distributed.LocalCluster, {"n_workers": count, "threads_per_worker": 1,
                                                          "processes": True, "dashboard_address": ":0"})
        if text.lower().endswith((".yaml", ".yml")):
            return self._from_config(Path(text).expanduser())
        try:
            client = distributed.Client(text, timeout="20s", set_as_default=False)
        except (OSError, TimeoutError) as error:
            raise InputError(f"cannot reach the Dask scheduler at {text} ({error})") from None
        self._owned.append(client)
        self._check_workers(client)
        return client

    def _start(self, cluster_class, options: dict, scale: int | None = None):
        distributed = _require_distributed()
        import dask

        # the scheduler and nannies of a LocalCluster read these when they are made, here in this process
        config = LOCAL_CLUSTER_CONFIG if cluster_class is distributed.LocalCluster else {}
        with dask.config.set(config):
            cluster = cluster_class(**options)
            self._owned.append(cluster)
            if scale:
                cluster.scale(scale)
            client = distributed.Client(cluster, set_as_default=False)
            self._owned.append(client)
        return client

    def _from_config(self, path: Path):
        import yaml

        try:
            config = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        except (OSError, yaml.YAMLError) as error:
            raise InputError(f"not a readable cluster config ({str(error).splitlines()[0]})", path=str(path)) from None
        if not isinstance(config, dict):
            raise InputError("a cluster config holds a mapping (cluster, workers, ...)", path=str(path))
        config = dict(config)
        if "address" in config:
            self.scheduler = str(config["address"])
            return self._connect()
        kind = str(config.pop("cluster", "local")).lower()
        workers = config.pop("workers", None)
        if kind == "local":
            distributed = _require_distributed()
            options = {"threads_per_worker": 1, "processes": True, "dashboard_address": ":0", **config}
            if workers is not None:
                options["n_workers"] = int(workers)
            return self._start(distributed.LocalCluster, options)
        if kind not in JOBQUEUE:
            raise InputError(f"cluster '{kind}' is not local or one of {', '.join(JOBQUEUE)}", path=str(path))
        try:
            import dask_jobqueue
        except ImportError:
            raise InputError(f"cluster '{kind}' needs dask-jobqueue: pip install dask-jobqueue",
                             path=str(path)) from None
        return self._start(getattr(dask_jobqueue, JOBQUEUE[kind]), config, scale=int(workers or 1))

    @staticmethod
    def _check_workers(client) -> None:
        """Every worker can import rtresponse, the same version as here (else results could differ)."""
        from . import __version__

        try:
            versions = client.run(_worker_version)
        except Exception as error:  # noqa: BLE001 - a worker without rtresponse fails to unpickle the function
            raise InputError(f"the Dask workers cannot run rtresponse ({type(error).__name__}: {error}); install "
                             "it in the workers' environment") from None
        other = {address: v for address, v in versions.items() if v != __version__}
        if other:
            address, version = next(iter(other.items()))
            raise InputError(f"worker {address} has rtresponse {version}, this process {__version__}: "
                             "install the same version on every worker")

    def close(self) -> None:
        for thing in reversed(self._owned):
            try:
                thing.close()
            except Exception:  # noqa: BLE001 - closing is best effort
                pass
        if self._owned:
            self._client = None
        self._owned.clear()

    def __enter__(self) -> "Execution":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # ------------------------------------------------------------------ running tasks
    def threads_per_task(self) -> int:
        """Threads a task may use (ITK): the cores shared by the local workers; -1: the Dask worker's thread
        count (:func:`task_threads` resolves it where the task runs); 0: leave as it is."""
        if self.kind == DASK:
            return -1
        if self.workers > 1 and not in_slicer():
            return max(1, (os.cpu_count() or 1) // self.workers)
        return 0

    def map(self, function: Callable, tasks: Sequence[tuple], *, shared: Mapping | None = None,
            order: Sequence[int] | None = None, progress: Callable[[int, int], None] | None = None,
            should_cancel: Callable[[], bool] | None = None, cancelled: str = "cancelled",
            on_lost: Callable[[int, BaseException], Any] | None = None,
            on_result: Callable[[int, Any], None] | None = None) -> list:
        """``[function(*task, **shared) for task in tasks]``, computed where this execution says.

        ``order``: the order to start tasks in (e.g. costliest first); results are in task order all the same.
        ``progress(done, total)`` is called as each task finishes, ``should_cancel()`` polled between them
        (True: the submitted tasks are cancelled and :class:`Cancelled` raised; Ctrl-C cancels them too).
        ``on_lost(index, error)``: the result to use for a task Dask gave up on (its worker died each time it
        ran it, ``KilledWorker``) instead of failing the run. A task's own exception is raised as it is.
        ``on_result(index, result)`` is called here, in this process, as each task finishes (before ``progress``), so
        a caller can keep finished results (a resumable run's progress file) before the others end.
        """
        tasks = list(tasks)
        shared = dict(shared or {})
        order = list(range(len(tasks))) if order is None else list(order)
        if sorted(order) != list(range(len(tasks))):
            raise ValueError("order must be a permutation of the task numbers")
        results: list = [None] * len(tasks)

        def finished(done: int, index: int) -> None:
            if on_result is not None:
                on_result(index, results[index])
            if progress:
                progress(done, len(tasks))
            if should_cancel is not None and should_cancel():
                raise Cancelled(cancelled)

        if not tasks:
            return results
        if self.kind == DASK:
            self._map_dask(function, tasks, shared, order, results, finished, on_lost)
        elif self.workers == 1:
            for done, index in enumerate(order, start=1):
                if should_cancel is not None and should_cancel():
                    raise Cancelled(cancelled)
                results[index] = function(*tasks[index], **shared)
                finished(done, index)
        else:
            from joblib import Parallel, delayed

            backend = "threading" if in_slicer() else "loky"
            outputs = Parallel(n_jobs=min(self.workers, len(tasks)), backend=backend, batch_size=1,
                               return_as="generator_unordered")(
                delayed(_numbered)(index, function, tasks[index], shared) for index in order)
            try:
                for done, (index, result) in enumerate(outputs, start=1):
                    results[index] = result
                    finished(done, index)
            finally:
                outputs.close()  # Cancel / Ctrl-C: the tasks not yet started never start
        return results

    def _map_dask(self, function, tasks, shared, order, results, finished, on_lost) -> None:
        import uuid

        from distributed import as_completed
        from distributed.scheduler import KilledWorker

        client = self.client
        # shared inputs go to every worker once (replicated: a lost worker does not lose them)
        scattered = {name: client.scatter([value], broadcast=True, hash=False)[0] for name, value in shared.items()}
        run = uuid.uuid4().hex[:12]
        name = getattr(function, "__name__", "task").strip("_")
        futures, index_of = [], {}
        try:
            for position, index in enumerate(order):
                future = client.submit(_numbered, index, function, tasks[index], scattered,
                                       key=f"rtresponse-{name}-{run}-{index}", pure=False,
                                       priority=len(order) - position)
                futures.append(future)
                index_of[future.key] = index
            pending = as_completed(futures, loop=client.loop)
            for done, future in enumerate(pending, start=1):
                index = index_of[future.key]
                try:
                    got, result = future.result()
                except KilledWorker as error:
                    if on_lost is None:
                        raise
                    got, result = index, on_lost(index, error)
                results[got] = result
                future.release()  # results stream back; nothing piles up on the workers
                finished(done, got)
        except BaseException:
            client.cancel(futures + list(scattered.values()))
            raise
        finally:
            for future in scattered.values():
                future.release()


def task_threads(requested: int) -> int:
    """Inside a task: ``requested`` threads, or for -1 the thread count of the Dask worker running it."""
    if requested >= 0:
        return requested
    try:
        from distributed import get_worker

        return max(1, int(get_worker().state.nthreads))
    except (ImportError, ValueError, AttributeError):
        return 0


def _numbered(index: int, function: Callable, task: tuple, shared: Mapping) -> tuple:
    return index, function(*task, **shared)


def _worker_version() -> str:
    from . import __version__

    return __version__


def resolve(execution: "Execution | str | None" = None, n_jobs: int | None = 1) -> tuple[Execution, bool]:
    """(an Execution, whether the caller owns it and must close it) from what a library function was given:
    an Execution, a dask Client, a scheduler setting, or None (local with ``n_jobs`` workers)."""
    if isinstance(execution, Execution):
        return execution, False
    if execution is None or isinstance(execution, str):
        workers = 1 if n_jobs in (None, 0) else int(n_jobs)
        return Execution(execution, workers=max(1, workers)), True
    if type(execution).__name__ == "Client":
        return Execution(client=execution), False
    raise InputError(f"execution must be an Execution, a dask Client or a scheduler setting, got "
                     f"{type(execution).__name__}")
