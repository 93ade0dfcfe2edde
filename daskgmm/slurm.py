"""SLURM worker jobs that say why they do not start.

``dask_jobqueue`` submits each worker as a batch job from its event loop. When
``sbatch`` refuses a job, the error ends in a log line of that loop and the
client waits for workers that will never come; when the jobs stay pending, it
waits in silence. Here a refused submission ends the wait at once with
``sbatch``'s own message, the wait reports how many jobs are pending and
SLURM's reason, and a timeout says what the jobs ask for against what the
partition offers.
"""

from __future__ import annotations

import logging
import re
import shutil
import subprocess
import time

from .errors import ClusterError

__all__ = ["job_class", "wait_for_workers"]

logger = logging.getLogger(__name__)


def job_class(refusals: list[str]):
    """A ``SLURMJob`` whose refused submission is recorded in ``refusals`` (sbatch's
    message) instead of raised in the cluster's event loop."""
    from dask_jobqueue.slurm import SLURMJob
    from distributed.deploy.spec import ProcessInterface

    class Job(SLURMJob):
        async def start(self):
            try:
                await super().start()
            except RuntimeError as exc:
                text = str(exc)
                message = text.split("stderr:", 1)[-1].strip() or text
                refusals.append(" ".join(line.strip() for line in message.splitlines()))
                # a job that never was: nothing to cancel when the cluster closes
                await ProcessInterface.start(self)

    return Job


def _run(*cmd: str) -> str:
    if not shutil.which(cmd[0]):
        return ""
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=30)
    return done.stdout if done.returncode == 0 else ""


def _job_states(job_ids: list[str]) -> dict[str, tuple[str, str]]:
    """``{job id: (state, reason)}`` of the jobs that squeue still lists."""
    if not job_ids:
        return {}
    out = _run("squeue", "-h", "-j", ",".join(job_ids), "-o", "%i|%T|%r")
    states = {}
    for line in out.splitlines():
        parts = line.strip().split("|")
        if len(parts) == 3:
            states[parts[0]] = (parts[1], parts[2])
    return states


def _summary(states: dict[str, tuple[str, str]]) -> str:
    """e.g. "2 pending (Resources), 1 running"."""
    counts: dict[str, int] = {}
    for state, reason in states.values():
        key = state.lower() + (f" ({reason})" if state == "PENDING" and reason != "None" else "")
        counts[key] = counts.get(key, 0) + 1
    return ", ".join(f"{n} {key}" for key, n in sorted(counts.items()))


def _offer(queue: str | None) -> str:
    """What the partition offers: its nodes' most CPUs and memory, from sinfo."""
    out = _run("sinfo", "-h", "-o", "%P|%c|%m")
    rows = [line.split("|") for line in out.splitlines() if line.count("|") == 2]
    if queue:
        rows = [r for r in rows if r[0].rstrip("*") == queue]
    else:
        rows = [r for r in rows if r[0].endswith("*")]  # the default partition
    if not rows:
        return f"partition {queue!r} is not listed by sinfo" if queue else ""
    cpus = max(int(re.sub(r"\D", "", r[1]) or 0) for r in rows)
    memory = max(int(re.sub(r"\D", "", r[2]) or 0) for r in rows)
    return f"partition {rows[0][0].rstrip('*')} offers nodes of at most {cpus} CPUs and {memory} MB"


def _request(config: dict) -> str:
    """e.g. "4 cores and 16GiB of memory per job, in the default queue"."""
    queue = config.get("queue")
    return (f"{config.get('cores')} cores and {config.get('memory')} of memory per job, in "
            + (f"queue {queue}" if queue else "the default queue"))


def _job_ids(cluster) -> list[str]:
    return [str(w.job_id) for w in cluster.workers.values() if getattr(w, "job_id", None)]


def wait_for_workers(client, cluster, n: int, timeout: float, config: dict,
                     refusals: list[str], poll: float = 1.0) -> None:
    """Wait until ``n`` workers have joined; stop at once on a refused submission
    (:class:`ClusterError`), report pending jobs while waiting, explain a timeout
    (``TimeoutError``)."""
    deadline = time.monotonic() + timeout
    said = None
    while True:
        if refusals:
            offer = _offer(config.get("queue"))
            raise ClusterError(
                f"SLURM refused the worker job: {refusals[0]} (it asks for {_request(config)}"
                + (f"; {offer}" if offer else "")
                + "). Change cores, memory or queue in the cluster config."
            )
        joined = len(client.scheduler_info(n_workers=-1).get("workers", {}))
        if joined >= n:
            return
        states = _job_states(_job_ids(cluster))
        summary = _summary(states)
        if summary and summary != said:
            logger.info("waiting for %d worker(s), %d joined; SLURM jobs: %s", n, joined, summary)
            said = summary
        if time.monotonic() >= deadline:
            offer = _offer(config.get("queue"))
            raise TimeoutError(
                f"only {joined} of {n} worker(s) joined within {timeout:g} s; SLURM jobs: "
                f"{summary or 'none listed'}. The config asks for {_request(config)}"
                + (f", and {offer}" if offer else "")
                + ". Ask for fewer cores or less memory per job, or name a partition (queue) "
                "that offers them; or wait longer (--wait in the command line) if the queue is only busy."
            )
        time.sleep(poll)
