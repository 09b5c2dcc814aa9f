"""Launch a worker script on two gloo ranks under torchrun, as the distributed tests do (one launch per module:
process start-up dominates), and the one-process runs they are compared with. Not collected by pytest."""
import json
import os
import subprocess
import sys


def _rank_env(env=None):
    """One thread, no progress bars, outside any enclosing torchrun: how every rank runs."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "GAN_PROBE_PROGRESS": "0", **(env or {})}
    env.pop("WORLD_SIZE", None)
    return env


def launch_two_ranks(tmp, worker_source, *args, env=None, timeout=300):
    """Write ``worker_source`` to ``tmp/worker.py`` and run it on 2 ranks with ``tmp`` and ``args`` as its
    arguments (one thread each, no progress bars, outside any enclosing torchrun); returns the finished process,
    whose exit status must be 0."""
    (tmp / "worker.py").write_text(worker_source)
    done = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
                           str(tmp / "worker.py"), str(tmp), *map(str, args)], capture_output=True, text=True,
                          env=_rank_env(env), timeout=timeout)
    assert done.returncode == 0, f"stdout: {done.stdout[-1500:]}\nstderr: {done.stderr[-3000:]}"
    return done


def run_one_process(*argv, env=None, timeout=300):
    """``gan-probe ARGV`` as one fresh process in the ranks' environment (:func:`launch_two_ranks`), the run a
    two-rank result is compared with: nothing an earlier test left in the pytest worker (threads, loaded
    kernels, patched modules) reaches it. Returns the finished process, whose exit status must be 0."""
    done = subprocess.run([sys.executable, "-m", "gan_probe", *map(str, argv)], capture_output=True, text=True,
                          env=_rank_env(env), timeout=timeout)
    assert done.returncode == 0, f"stdout: {done.stdout[-1500:]}\nstderr: {done.stderr[-3000:]}"
    return done


def rank_outputs(tmp):
    """The ``tmp/rank{r}.json`` each rank wrote."""
    return [json.loads((tmp / f"rank{r}.json").read_text()) for r in range(2)]
