"""Where shards run: a local process pool (default) or Ray Data (a local Ray, or a cluster at an address).

Both take a picklable `fn(task) -> result` and yield results as shards finish. Shard outputs are written by
the workers themselves (to a shared filesystem on a cluster); only small summaries travel back. Which
executor or how many workers never changes the dataset: every shard's output depends on its inputs only.

Every worker process starts with `init_worker`: the processes are the parallelism, so the video decoder and
OpenCV each take the worker's share of the cores (one thread when the workers fill them) rather than a pool
of one thread per core in every one of N workers, which only adds switching (8% slower curation with two
workers on two cores). And freed frame memory stays in the heap for the next video (`heap`).
"""

from __future__ import annotations

import logging
import multiprocessing
import os
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from typing import Any, Protocol

import cv2

from retake import video
from retake.checks import check_finite, check_int
from retake.data import heap

EXECUTORS = ("local", "ray")


class Executor(Protocol):
    def map(self, fn: Callable[[Any], Any], tasks: Sequence[Any]) -> Iterator[Any]: ...


_END = object()


def default_workers() -> int:
    return max(1, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1))


def resolve_workers(workers: int | None, name: str = "workers") -> int:
    """None: one per CPU (`default_workers`). 0 is refused rather than read as None: `workers or default` made
    a `--workers 0` quietly use every core."""
    return default_workers() if workers is None else check_int(name, workers, minimum=1)


def init_worker(threads: int = 1) -> None:
    """Tune a worker process that runs beside others: `threads` for its decoders and for OpenCV (its share of
    the cores), and freed frame memory kept for reuse (see the module's docstring)."""
    if threads < 1:
        raise ValueError(f"threads per worker must be >= 1, got {threads}")
    cv2.setNumThreads(threads)
    video.set_decoder_threads(threads)
    heap.retain_freed_memory()


def threads_per_worker(workers: int) -> int:
    """Each worker's share of this machine's cores (at least one thread)."""
    return max(1, default_workers() // workers)


def worker_settings() -> dict[str, Any]:
    """What `init_worker` set in this process, for tests and debugging."""
    return {
        "cv2_threads": cv2.getNumThreads(),
        "decoder_threads": video.decoder_threads(),
        "heap_retained": heap.retain_freed_memory.cache_info().currsize > 0,
    }


class LocalExecutor:
    """A process pool of `workers` processes (None: one per CPU). `workers=1` runs in this process, which is
    what tests and debugging want."""

    def __init__(
        self,
        workers: int | None = None,
        *,
        max_tasks_per_child: int = 64,
        preload: tuple[str, ...] = ("retake.data.pipeline",),
    ) -> None:
        self.workers = resolve_workers(workers)
        self.preload = preload
        # Recycling workers bounds what a leak in a decoder can cost over a million videos.
        self.max_tasks_per_child = max_tasks_per_child

    def map(self, fn: Callable[[Any], Any], tasks: Sequence[Any]) -> Iterator[Any]:
        """fn(task) for every task on a process pool, yielded as each finishes (not in task order), so a caller
        records finished shards while others run. One worker or one task runs in this process."""
        tasks = tasks if isinstance(tasks, Sequence) else list(tasks)  # a generator has no len()
        if self.workers == 1 or len(tasks) <= 1:
            yield from map(fn, tasks)
            return
        # forkserver: workers fork from a clean server that has imported the pipeline once (fast starts, no
        # inherited threads or locks of this process); spawn where forkserver does not exist.
        if "forkserver" in multiprocessing.get_all_start_methods():
            context = multiprocessing.get_context("forkserver")
            context.set_forkserver_preload(list(self.preload))
        else:
            context = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(
            self.workers,
            mp_context=context,
            initializer=init_worker,
            initargs=(threads_per_worker(self.workers),),
            max_tasks_per_child=self.max_tasks_per_child,
        ) as pool:
            pending: set[Future] = set()
            queue = iter(tasks)
            # A bounded window keeps a million queued tasks out of memory and the pipes.
            for task in queue:
                pending.add(pool.submit(fn, task))
                if len(pending) >= 2 * self.workers:
                    break
            while pending:
                done, pending = wait(pending, return_when=FIRST_COMPLETED)
                for future in done:
                    yield future.result()
                    next_task = next(queue, _END)  # a sentinel of its own: None may be a task
                    if next_task is not _END:
                        pending.add(pool.submit(fn, next_task))


class RayExecutor:
    """Ray Data: a pool of `workers` actors, each asking for `cpus_per_worker` CPUs. Fractional CPUs matter
    on small machines: actors that each take a whole CPU leave none for Ray Data's own tasks and can
    deadlock on 2 cores. Starts a local Ray (limited to `num_cpus`) unless one is running or `address` is
    given (`"auto"` or `"ray://host:port"` joins a cluster)."""

    def __init__(
        self,
        workers: int | None = None,
        *,
        address: str | None = None,
        cpus_per_worker: float = 0.5,
        num_cpus: int | None = None,
    ) -> None:
        self.workers = resolve_workers(workers)
        self.address = address
        self.cpus_per_worker = check_finite("cpus_per_worker", cpus_per_worker, above=0)
        self.num_cpus = resolve_workers(num_cpus, "num_cpus")

    def map(self, fn: Callable[[Any], Any], tasks: Sequence[Any]) -> Iterator[Any]:
        """fn(task) for every task on a Ray Data pool of up to `workers` actors, yielded as the rows come back.
        Starts a local Ray or joins `address` when none is running, and shuts down only a Ray it started."""
        tasks = tasks if isinstance(tasks, Sequence) else list(tasks)
        if not tasks:
            return
        import ray

        started = self._init(ray)
        try:
            context = ray.data.DataContext.get_current()
            context.enable_progress_bars = False  # the runner draws its own bar
            context.print_on_execution_start = False
            logging.getLogger("ray.data").setLevel(logging.WARNING)  # no per-dataset summaries in our output
            # One task per row, each row its own block (up to a cap), so shards spread over the actors.
            items = [{"task": task} for task in tasks]
            dataset = ray.data.from_items(items, override_num_blocks=min(len(items), 10_000))
            results = dataset.map(
                _TaskActor,
                # An actor asks for a fraction of a CPU (or a few): it runs that many threads, at least one.
                fn_constructor_kwargs={"fn": fn, "threads": max(1, int(self.cpus_per_worker))},
                compute=ray.data.ActorPoolStrategy(size=min(self.workers, len(tasks))),
                num_cpus=self.cpus_per_worker,
            )
            for row in results.iter_rows():
                yield row["result"]
        finally:
            if started:
                ray.shutdown()

    def _init(self, ray: Any) -> bool:
        if ray.is_initialized():
            return False
        common = {"include_dashboard": False, "log_to_driver": False, "configure_logging": False}
        if self.address:
            ray.init(address=self.address, **common)
        else:
            ray.init(num_cpus=self.num_cpus, **common)
        return True


class _TaskActor:
    """A Ray Data actor running `fn` on the task in a row; the result rides back as an object column."""

    def __init__(self, fn: Callable[[Any], Any], threads: int) -> None:
        init_worker(threads)
        self.fn = fn

    def __call__(self, row: dict[str, Any]) -> dict[str, Any]:
        return {"result": self.fn(row["task"])}


def make_executor(name: str, workers: int | None = None, *, address: str | None = None) -> Executor:
    """The executor named `name` ("local": a process pool, "ray": Ray tasks, at `address` if given) with
    `workers` workers (None: one per CPU this process may use)."""
    if name == "local":
        if address:
            raise ValueError(f"--address {address!r} only applies to the ray executor")
        return LocalExecutor(workers)
    if name == "ray":
        return RayExecutor(workers, address=address)
    raise ValueError(f"unknown executor {name!r}; known: {', '.join(EXECUTORS)}")
