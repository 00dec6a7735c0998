"""Build an index on a Ray cluster: one Ray task per shard tokenizes it and suffix-sorts it.

Why this shape: a shard's sort needs the whole shard in one worker's memory, and tokenizing is
embarrassingly parallel over input files, so one task per shard does both where the data already
is, and nothing but a small dict travels back to the driver. The shard plan, the state file, the
tokenizer, the fingerprint and the manifest are the local builder's own (`builder.build_index`
with `shard_by="files"`); only the runner of the shard jobs differs, and every task runs
`builder.run_shard_job`, the function the local build runs in-process. So a Ray build is
byte-identical to a local build of the same sharding, and either can resume the other.

Each task writes its files under `.partial` names in the index directory (shared storage on a
real cluster: every node must see the same path) and renames them when complete; the driver
writes the manifest last. A task whose worker dies is retried by Ray (`max_retries`); it redoes
only the steps whose final file is missing, so no shard is ever half-written.
"""

from __future__ import annotations

import socket
from dataclasses import replace
from pathlib import Path
from typing import Any

from .builder import BuildOptions, ShardJob, build_index, run_shard_job
from .errors import IndexToolsError
from .format import Manifest
from .progress import Progress
from .suffix_sort import sort_bytes_per_byte

INSTALL_HINT = 'the Ray build needs Ray: pip install -e ".[cluster]"'
MAX_RETRIES = 3


class RayBuildError(IndexToolsError):
    """Ray is missing, or a shard task failed: one line naming the shard and the cause."""


def _import_ray() -> Any:
    try:
        import ray
    except ImportError:
        raise RayBuildError(INSTALL_HINT) from None
    return ray


def shard_task(job: ShardJob) -> dict[str, Any]:
    """The Ray task: `run_shard_job`, with its errors made into one picklable line.

    Our error classes take several constructor arguments, which Ray cannot rebuild on the driver
    ("Failed to deserialize exception"); the message is all the driver reports anyway.
    """
    try:
        return run_shard_job(job)
    except IndexToolsError as exc:
        raise RayBuildError(str(exc)) from None
    except OSError as exc:
        where = f" ({exc.filename})" if exc.filename else ""
        raise RayBuildError(f"cannot write the index{where}: {exc.strerror or exc}") from None


def _cause(ray: Any, exc: BaseException, retries: int) -> str:
    """The one-line reason a task failed: the task's own error message, or how its worker died."""
    if isinstance(exc, ray.exceptions.RayTaskError):
        cause = exc.cause
        if isinstance(cause, IndexToolsError):
            return str(cause)
        text = str(cause).strip().splitlines()
        return f"{type(cause).__name__}: {text[0] if text else ''}".rstrip(": ")
    if isinstance(exc, ray.exceptions.WorkerCrashedError | ray.exceptions.NodeDiedError):
        return f"its worker died (Ray retried it {retries} times)"
    if isinstance(exc, ray.exceptions.OutOfMemoryError):
        return "killed by Ray's memory monitor (out of memory): use more shards (--shards) or more RAM per node"
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}"


def _describe(job: ShardJob) -> str:
    names = [Path(f).name for f in job.files]
    shown = ", ".join(names[:3]) + (f" and {len(names) - 3} more" if len(names) > 3 else "")
    return f"shard {job.shard} ({shown})"


def _cluster_budget_gb(ray: Any, workers: int) -> float | None:
    """The sort budget as the builder takes it (GiB over `workers`), from the *worker nodes*: the
    node with the least of Ray's `memory` per CPU sets what one sort may use, so every shard fits
    every node. The driver's own RAM says nothing about the nodes that sort (None: no figures)."""
    per_cpu = [float(n["Resources"].get("memory", 0)) / float(n["Resources"]["CPU"])
               for n in ray.nodes() if n.get("Alive") and n.get("Resources", {}).get("CPU")]
    per_cpu = [m for m in per_cpu if m > 0]
    return workers * min(per_cpu) / (1 << 30) if per_cpu else None


def _memory_request(ray: Any, job: ShardJob) -> int:
    """Bytes of Ray's `memory` resource a shard's sort needs, so a node runs only as many sorts
    as fit; capped at the largest node's, else a big shard would never be scheduled."""
    need = int(job.input_bytes() * sort_bytes_per_byte(job.input_bytes())) + (256 << 20)
    largest = max((float(n.get("Resources", {}).get("memory", 0)) for n in ray.nodes() if n.get("Alive")), default=0.0)
    return int(min(need, largest)) if largest else 0


def _run_on_ray(ray: Any, jobs: list[ShardJob], max_retries: int) -> list[dict[str, Any]]:
    """Submit one task per unfinished shard; report progress; stop at the first failed shard."""
    task = ray.remote(num_cpus=1, max_retries=max_retries, retry_exceptions=False)(shard_task)
    pending: dict[Any, ShardJob] = {}
    for job in jobs:
        mem = _memory_request(ray, job)
        pending[task.options(memory=mem).remote(job) if mem else task.remote(job)] = job
    progress = Progress("ray build", len(jobs), "shards", jobs[0].opts.progress, also="tok")
    results: list[dict[str, Any]] = []
    try:
        while pending:
            ready, _ = ray.wait(list(pending), num_returns=1, timeout=0.25)
            for ref in ready:
                job = pending.pop(ref)
                try:
                    info = ray.get(ref)
                except Exception as exc:  # noqa: BLE001 - every failure becomes one line
                    for other in pending:
                        ray.cancel(other)
                    pending.clear()
                    raise RayBuildError(f"{_describe(job)}: {_cause(ray, exc, max_retries)}; finished shards are kept "
                                        "(fix the cause and rerun the same command to resume)") from None
                results.append(info)
                progress.update(1, also=info["tokenized_bytes"] // job.width)
    finally:
        progress.close()
    return results


def _check_reachable(address: str, timeout: float = 5.0) -> None:
    """Fail in seconds on a HOST:PORT nobody listens on: ray.init itself retries for minutes."""
    host, sep, port = address.rpartition(":")
    if address == "auto" or "://" in address or not sep or not port.isdigit():
        return  # "auto", ray:// client addresses and the like: left to Ray
    try:
        socket.create_connection((host or "127.0.0.1", int(port)), timeout=timeout).close()
    except OSError as exc:
        raise RayBuildError(f"cannot reach the Ray cluster at {address}: {exc.strerror or exc}") from None


def build_index_ray(sources: list[str | Path], output: str | Path, opts: BuildOptions | None = None,
                    address: str | None = None, num_cpus: int | None = None,
                    max_retries: int = MAX_RETRIES) -> Manifest:
    """Build (or resume) an index in `output` with the shard jobs as Ray tasks.

    `address`: an existing cluster (`ray.init(address=...)`, e.g. "auto" or "ray://host:10001");
    None starts a local Ray runtime with `num_cpus` CPUs (default: all). An already initialized
    Ray (a test, a notebook) is used as it is and left running.
    """
    ray = _import_ray()
    opts = opts or BuildOptions()
    started = False
    if not ray.is_initialized():
        init: dict[str, Any] = {"address": address} if address else {"num_cpus": num_cpus}
        if address:
            _check_reachable(address)
        try:
            ray.init(**init, include_dashboard=False, log_to_driver=False, logging_level="ERROR",
                     configure_logging=True)
        except Exception as exc:  # noqa: BLE001 - ConnectionError, RuntimeError, ValueError...
            first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            where = f"the Ray cluster at {address}" if address else "a local Ray runtime"
            raise RayBuildError(f"cannot start or reach {where}: {first}") from None
        started = True
    try:
        cpus = max(1, int(ray.cluster_resources().get("CPU", 1)))
        # --workers, when given, bounds the shard count from below as in the local build;
        # otherwise every CPU of the cluster gets a shard when the corpus is large enough.
        workers = opts.workers if opts.workers > 1 else cpus
        memory_gb = opts.memory_gb if opts.memory_gb else _cluster_budget_gb(ray, workers)
        opts = replace(opts, shard_by="files", workers=workers, memory_gb=memory_gb)
        return build_index(sources, output, opts, run_jobs=lambda jobs: _run_on_ray(ray, jobs, max_retries))
    finally:
        if started:
            ray.shutdown()
