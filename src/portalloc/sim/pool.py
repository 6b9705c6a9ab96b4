# Local worker processes for the simulator: the --vary grid and the fix checks.
#
# Rules: every job is a whole simulation of its own (a scenario dict in, a plain document out), so running jobs
# in processes or one by one gives the same results in the same order. Where this machine cannot start or keep
# worker processes (no /dev/shm for multiprocessing's semaphores, a process limit, a worker killed by the OOM
# killer), the jobs not yet answered run in this process instead and `map_jobs` says so in its second answer:
# a slower run, never a traceback or a lost result.
"""map_jobs(): run simulation jobs in local processes, falling back to this process."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any


def map_jobs(fn: Callable[..., Any], jobs: Sequence[tuple[Any, ...]], workers: int,
             done: Callable[[], None] | None = None) -> tuple[list[Any], str | None]:
    """``[fn(*job) for job in jobs]``, in up to ``workers`` local processes when more than one job and worker
    (``fn`` and the jobs must pickle), in order. ``done()`` is called as each job finishes. The second answer
    is None, or why the jobs ran (in part) in this process."""
    results: list[Any] = []
    note = None
    if workers > 1 and len(jobs) > 1:
        from concurrent.futures import ProcessPoolExecutor
        from concurrent.futures.process import BrokenProcessPool

        try:
            with ProcessPoolExecutor(max_workers=min(workers, len(jobs))) as pool:
                for result in pool.map(fn, *zip(*jobs, strict=True)):
                    results.append(result)
                    if done is not None:
                        done()
        except (OSError, BrokenProcessPool) as exc:
            note = (f"worker processes failed ({type(exc).__name__}: {exc}); the remaining "
                    f"{len(jobs) - len(results)} ran in this process")
    for job in jobs[len(results):]:
        results.append(fn(*job))
        if done is not None:
            done()
    return results, note
