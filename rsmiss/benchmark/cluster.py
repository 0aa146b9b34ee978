"""The benchmark grid on a dask cluster: one task per training run, one run per worker.

``--workers N`` starts N worker processes on this machine (one GPU each when it has GPUs);
``--scheduler tcp://HOST:PORT`` uses a running cluster (its workers must see the same
workspace folder). Cells are small, so one cell per GPU (or per CPU worker process) beats
data-parallel training inside a cell. Workers that advertise a ``GPU`` resource
(``dask worker ... --resources GPU=1``) get one task at a time each.

A task whose worker process dies is run again on another worker, up to :data:`RETRIES`
more times (dask's ``distributed.scheduler.allowed-failures``, set here for ``--workers``;
for ``--scheduler`` it is the scheduler's own setting, 3 by default); the job plans its
run when it starts, so the retry resumes from the run's last checkpoint.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from rsmiss.benchmark.collect import Outcome
from rsmiss.benchmark.execute import Context, Job, absorb, run_job_on_worker
from rsmiss.errors import ConfigError
from rsmiss.scheduler import check_address
from rsmiss.scheduler import connect as connect_scheduler

logger = logging.getLogger(__name__)

RETRIES = 2  # runs of a task after its worker died (so 3 attempts in all)


@dataclass
class Cluster:
    """A connected dask client, the torch threads a task uses and the resources it asks for."""

    client: Any
    threads: int | None
    resources: dict[str, float] | None


def check_cluster_flags(scheduler: str | None, workers: int | None) -> None:
    if scheduler is not None and workers is not None:
        raise ConfigError("--scheduler and --workers exclude each other; pass one")
    if workers is not None and workers < 1:
        raise ConfigError(f"--workers must be at least 1, got {workers}")
    if scheduler is not None:
        check_address(scheduler)


def _gpu_count() -> int:
    import torch

    return torch.cuda.device_count() if torch.cuda.is_available() else 0


def _local_cluster(workers: int) -> Any:
    """``workers`` processes with one task slot each; with GPUs, worker i sees GPU i mod n."""
    import dask
    from distributed import LocalCluster, Nanny, Scheduler, SpecCluster

    threads = max(1, (os.cpu_count() or 1) // workers)
    env = {"OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}
    with dask.config.set({"distributed.scheduler.allowed-failures": RETRIES}):
        gpus = _gpu_count()
        if not gpus:
            return LocalCluster(
                n_workers=workers,
                threads_per_worker=1,
                processes=True,
                dashboard_address=None,
                env=env,
            )
        specs = {
            i: {
                "cls": Nanny,
                "options": {
                    "nthreads": 1,
                    "resources": {"GPU": 1},
                    "env": {**env, "CUDA_VISIBLE_DEVICES": str(i % gpus)},
                    "host": "127.0.0.1",
                    "dashboard": False,
                    "silence_logs": logging.WARNING,
                },
            }
            for i in range(workers)
        }
        scheduler = {"cls": Scheduler, "options": {"host": "127.0.0.1", "dashboard": False}}
        return SpecCluster(workers=specs, scheduler=scheduler, silence_logs=logging.WARNING)


@contextmanager
def connect(scheduler: str | None, workers: int | None) -> Iterator[Cluster]:
    """A client of the cluster at ``scheduler``, or of ``workers`` local processes."""
    from distributed import Client

    check_cluster_flags(scheduler, workers)
    local = None
    if workers is not None:
        local = _local_cluster(workers)
        client = Client(local)
        threads = max(1, (os.cpu_count() or 1) // workers)
    else:
        client = connect_scheduler(scheduler)
        threads = None  # the workers' own OMP_NUM_THREADS (dask sets 1 unless told)
    try:
        info = client.scheduler_info()["workers"].values()
        gpu = any((w.get("resources") or {}).get("GPU") for w in info)
        logger.info(
            "dask cluster %s: %d worker(s)%s",
            client.scheduler.address,
            len(info),
            ", one GPU per cell" if gpu else "",
        )
        yield Cluster(client, threads, {"GPU": 1} if gpu else None)
    finally:
        client.close()
        if local is not None:
            # a worker that has trained takes a few seconds to exit and is then killed:
            # expected here, not the warning about a lost worker it would otherwise print
            nanny_log = logging.getLogger("distributed.nanny")
            level = nanny_log.level
            nanny_log.setLevel(logging.ERROR)
            try:
                local.close()
            finally:
                nanny_log.setLevel(level)


def run_jobs_on_cluster(out: Outcome, jobs: Sequence[Job], ctx: Context, cluster: Cluster) -> None:
    """Every job as a dask task; records arrive as tasks finish. The first failing cell
    stops the grid: tasks not yet finished are cancelled and its error is raised."""
    from distributed import as_completed

    client = cluster.client
    futures = {
        client.submit(
            run_job_on_worker,
            job,
            ctx,
            cluster.threads,
            key=f"rsmiss-cell-{job.run_id}",
            resources=cluster.resources,
        ): job
        for job in jobs
    }
    error: BaseException | None = None
    try:
        for fut in as_completed(futures):
            job = futures[fut]
            try:
                res = fut.result()
            except Exception as exc:  # KilledWorker after RETRIES, or a task that could not run
                out.failed = out.failed or f"{job.label} ({type(exc).__name__}: {exc})"
                error = exc
                break
            absorb(out, res)
            if res.error is not None:
                error = res.error
                break
    finally:
        if client.status == "running":  # not when the scheduler went away
            client.cancel(list(futures))
    if error is not None:
        raise error
