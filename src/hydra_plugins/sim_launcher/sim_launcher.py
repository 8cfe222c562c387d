"""``hydra/launcher=local``: parallel runs on this machine that survive a killed worker.

Like the joblib launcher, it keeps ``n_jobs`` long-lived worker processes, so imports and the
geography cache are paid once per worker, not once per run.  Unlike joblib/loky, a worker that
dies (SIGKILL, the out-of-memory killer, a segfault) takes down only the run it was doing:
that run is recorded as failed (``status.json`` + ``error.log`` in its directory, see
:mod:`sim.jobs`), a new worker is started and the sweep goes on.  With loky the whole pool
breaks (``TerminatedWorkerError``) and the sweep is aborted.

Each worker gets one job at a time over a pipe; the launching process waits on the pipes and
on the workers' process sentinels (:func:`multiprocessing.connection.wait`).  Jobs are sent
with cloudpickle, the way joblib sends them.
"""

from __future__ import annotations

import logging
import multiprocessing as mp
import os
import signal
import time
import traceback
from dataclasses import dataclass
from multiprocessing.connection import wait
from pathlib import Path
from typing import Any, Sequence

from hydra.core.singleton import Singleton
from hydra.core.utils import (
    JobReturn,
    JobStatus,
    configure_log,
    filter_overrides,
    run_job,
    setup_globals,
)
from hydra.plugins.launcher import Launcher
from hydra.types import HydraContext, TaskFunction
from omegaconf import DictConfig, open_dict

log = logging.getLogger(__name__)


def _dumps(obj: Any) -> bytes:
    try:
        import cloudpickle
    except ImportError:  # pragma: no cover - joblib vendors it
        from joblib.externals import cloudpickle
    return cloudpickle.dumps(obj)


# --------------------------------------------------------------------------------------
# worker process
# --------------------------------------------------------------------------------------
def _execute(idx: int, overrides: Sequence[str], hydra_context: HydraContext, config: DictConfig,
             task_function: TaskFunction, singleton_state: dict, conn) -> JobReturn:
    from hydra.core.hydra_config import HydraConfig

    setup_globals()
    Singleton.set_state(singleton_state)
    sweep_config = hydra_context.config_loader.load_sweep_config(config, list(overrides))
    with open_dict(sweep_config):
        sweep_config.hydra.job.id = f"{sweep_config.hydra.job.name}_{idx}"
        sweep_config.hydra.job.num = idx
    HydraConfig.instance().set_config(sweep_config)
    outdir = Path(str(sweep_config.hydra.sweep.dir)) / str(sweep_config.hydra.sweep.subdir)
    conn.send(("start", idx, str(outdir), os.getpid()))
    return run_job(hydra_context=hydra_context, config=sweep_config, task_function=task_function,
                   job_dir_key="hydra.sweep.dir", job_subdir_key="hydra.sweep.subdir")


def _worker(conn) -> None:
    """Loop: receive a pickled job, run it, send back its JobReturn (or the error)."""
    import pickle

    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the launching process handles Ctrl-C
    while True:
        try:
            msg = conn.recv_bytes()
        except (EOFError, OSError):
            return
        if not msg:
            return
        job = pickle.loads(msg)
        idx = job[0]
        try:
            ret = _execute(*job, conn)
            try:
                payload = _dumps(("done", idx, ret))
            except Exception:  # noqa: BLE001 - e.g. an unpicklable return value
                ret._return_value = None
                payload = _dumps(("done", idx, ret))
            conn.send_bytes(payload)
        except BaseException as e:  # noqa: BLE001 - report, keep serving
            conn.send_bytes(_dumps(("error", idx, f"{type(e).__name__}: {e}",
                                    traceback.format_exc())))


# --------------------------------------------------------------------------------------
# launcher
# --------------------------------------------------------------------------------------
@dataclass
class _Slot:
    proc: Any
    conn: Any
    job: int | None = None  # index into the job list
    outdir: str | None = None
    started: float = 0.0
    eof: bool = False


class SimLauncher(Launcher):
    def __init__(self, n_jobs: int = -1, start_method: str = "spawn", **kwargs: Any) -> None:
        self.n_jobs = int(n_jobs)
        self.start_method = start_method
        self.config: DictConfig | None = None
        self.task_function: TaskFunction | None = None
        self.hydra_context: HydraContext | None = None

    def setup(self, *, hydra_context: HydraContext, task_function: TaskFunction,
              config: DictConfig) -> None:
        self.config = config
        self.task_function = task_function
        self.hydra_context = hydra_context

    def _n_workers(self, n_jobs: int) -> int:
        cpus = os.cpu_count() or 1
        n = self.n_jobs if self.n_jobs > 0 else max(1, cpus + 1 + self.n_jobs)
        return max(1, min(n, n_jobs))

    def launch(self, job_overrides: Sequence[Sequence[str]], initial_job_idx: int) -> Sequence[JobReturn]:
        setup_globals()
        assert self.config is not None and self.hydra_context is not None
        configure_log(self.config.hydra.hydra_logging, self.config.hydra.verbose)
        sweep_dir = Path(str(self.config.hydra.sweep.dir))
        sweep_dir.mkdir(parents=True, exist_ok=True)
        n = self._n_workers(len(job_overrides))
        log.info(f"Local launcher: {len(job_overrides)} jobs on {n} worker processes, "
                 f"sweep output dir: {sweep_dir}")
        for i, ov in enumerate(job_overrides):
            log.info(f"\t#{initial_job_idx + i} : {' '.join(filter_overrides(ov))}")
        singleton_state = Singleton.get_state()
        payloads = [_dumps((initial_job_idx + i, list(ov), self.hydra_context, self.config,
                            self.task_function, singleton_state))
                    for i, ov in enumerate(job_overrides)]
        results: list[JobReturn | None] = [None] * len(job_overrides)
        ctx = mp.get_context(self.start_method)
        pending = list(range(len(job_overrides)))
        slots: list[_Slot] = []

        def new_slot() -> _Slot:
            parent, child = ctx.Pipe(duplex=True)
            p = ctx.Process(target=_worker, args=(child,), daemon=True, name="sim-launcher-worker")
            p.start()
            child.close()
            return _Slot(proc=p, conn=parent)

        def assign(slot: _Slot) -> None:
            if pending:
                i = pending.pop(0)
                slot.job, slot.outdir, slot.started = i, None, time.time()
                slot.conn.send_bytes(payloads[i])

        def receive(slot: _Slot) -> bool:
            """Handle one message of ``slot``; False at end of file (worker gone)."""
            try:
                msg = slot.conn.recv()
            except (EOFError, OSError):
                slot.eof = True
                return False
            self._handle(msg, slot, results, job_overrides, initial_job_idx)
            if msg[0] != "start":
                slot.job = None
                assign(slot)
            return True

        try:
            for _ in range(n):
                s = new_slot()
                slots.append(s)
                assign(s)
            while any(s.job is not None for s in slots):
                busy = [s for s in slots if s.job is not None]
                ready = wait([s.conn for s in busy if not s.eof] + [s.proc.sentinel for s in busy])
                for s in busy:
                    if not s.eof and s.conn in ready and receive(s):
                        continue
                    if s.proc.sentinel in ready or s.eof:
                        s.proc.join(timeout=5)
                        if s.proc.is_alive():
                            continue
                        while s.job is not None and not s.eof and s.conn.poll():
                            receive(s)  # what it sent before it died
                        if s.job is not None:
                            self._killed(s, results, job_overrides, initial_job_idx)
                        slots.remove(s)
                        with _quiet():
                            s.conn.close()
                        if pending:
                            ns = new_slot()
                            slots.append(ns)
                            assign(ns)
        finally:
            for s in slots:
                with _quiet():
                    s.conn.send_bytes(b"")
            for s in slots:
                s.proc.join(timeout=5)
                if s.proc.is_alive():
                    s.proc.terminate()
        out = []
        for i, r in enumerate(results):
            if r is None:  # never ran (interrupted): unknown status, like a lost job
                r = JobReturn(overrides=list(job_overrides[i]), status=JobStatus.FAILED,
                              _return_value=RuntimeError("job did not run"))
            out.append(r)
        return out

    # ------------------------------------------------------------------ helpers
    def _handle(self, msg, slot: _Slot, results, job_overrides, base: int) -> None:
        kind = msg[0]
        if kind == "start":
            slot.outdir = msg[2]
            return
        i = slot.job
        if kind == "done":
            results[i] = msg[2]
        else:  # the job failed outside the task function (e.g. composing its config)
            _, idx, err, tb = msg
            log.error(f"job #{idx} failed before or around its run: {err}")
            if slot.outdir:
                self._mark_failed(Path(slot.outdir), f"launcher: {err}", list(job_overrides[i]), tb)
            results[i] = JobReturn(overrides=list(job_overrides[i]), status=JobStatus.COMPLETED,
                                   working_dir=slot.outdir,
                                   _return_value={"status": "failed", "error": err,
                                                  "output_dir": slot.outdir})

    def _killed(self, slot: _Slot, results, job_overrides, base: int) -> None:
        i = slot.job
        code = slot.proc.exitcode
        how = (f"killed by signal {signal.Signals(-code).name}" if code is not None and code < 0
               else f"exited with code {code}")
        err = (f"worker process {slot.proc.pid} {how} while running this job "
               "(out of memory? see the system log)")
        log.error(f"job #{base + i}: {err}")
        if slot.outdir:
            self._mark_failed(Path(slot.outdir), err, list(job_overrides[i]), None)
            self._progress(slot, base + i, "failed")
        results[i] = JobReturn(overrides=list(job_overrides[i]), status=JobStatus.COMPLETED,
                               working_dir=slot.outdir,
                               _return_value={"status": "failed", "error": err,
                                              "output_dir": slot.outdir})

    @staticmethod
    def _mark_failed(outdir: Path, err: str, overrides: list[str], tb: str | None) -> None:
        try:
            from sim.jobs import mark_failed

            mark_failed(outdir, err, overrides, detail=tb or err)
        except Exception as e:  # noqa: BLE001 - never let bookkeeping break the sweep
            log.error(f"could not record the failure in {outdir}: {e}")

    def _progress(self, slot: _Slot, num: int, status: str) -> None:
        try:
            from sim.callbacks import record_progress

            record_progress(Path(str(self.config.hydra.sweep.dir)), num, status, slot.outdir)
        except Exception:  # noqa: BLE001
            pass


class _quiet:
    def __enter__(self):
        return self

    def __exit__(self, *exc) -> bool:
        return True
