"""A helper process for interactive planning: it plans the large tier while the calling thread
plans the small and medium ones, so a plan takes about the time of its slower half on a machine
with two cores or more (the tiers are independent; the engine is plain Python and numpy, which a
second thread in the same process could not run alongside the first).

The numbers are the same as `plan.evaluate`'s: the same functions run on the same inputs. The
helper keeps its own sizing caches, and the large tier always goes to it, so a keystroke that
does not change that tier's sizing (a price, another tier's model) finds it remembered there.
Anything wrong with the process (it could not start, it died, an input would not pickle) makes
`evaluate` plan in the calling thread instead, and the helper is not used again.

Used by the TUI, where a plan runs on every keystroke; one-shot commands gain nothing from
starting a process (about 0.3 s) to save a few tens of milliseconds.
"""

from __future__ import annotations

import multiprocessing
import os
import sys
import threading
import warnings
from collections.abc import Iterable
from concurrent.futures import Future, ProcessPoolExecutor

from planner.engine.knobs import Calibration
from planner.engine.scenario import Scenario
from planner.engine.specs import GpuSpec, ModelSpec

HELPER_TIERS = ("large",)  # planned by the helper process
OWN_TIERS = ("small", "medium")  # planned by the caller meanwhile
DISABLE_ENV = "PLANNER_HELPER"  # "0": never start the helper process


def _plan_in_helper(scenario: Scenario, tiers: tuple[str, ...], custom_gpus: list[GpuSpec], custom_models: list[ModelSpec],
                    calibration: Calibration | None) -> list:
    from planner.engine.plan import plan_tiers

    return plan_tiers(scenario, tiers, custom_gpus, custom_models, calibration)


def _clear_helper_caches() -> None:
    from planner.engine.plan import clear_check_cache

    clear_check_cache()


def _quiet() -> None:
    """In the helper: nothing it prints (a numpy warning) may reach the terminal the TUI draws on."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 1)
    os.dup2(devnull, 2)
    warnings.simplefilter("ignore")


def _start_resource_tracker() -> None:
    """multiprocessing's resource tracker (a process of its own) inherits the caller's stderr by
    its file descriptor; a Textual app replaces sys.stderr with a capture whose descriptor is -1,
    which the tracker's start refuses. It starts with the process's own stderr instead."""
    from multiprocessing import resource_tracker

    captured = sys.stderr
    try:
        sys.stderr = sys.__stderr__ or captured
        resource_tracker.ensure_running()
    finally:
        sys.stderr = captured


def wanted() -> bool:
    """Whether a helper process can help here: two cores or more, and not turned off."""
    return os.environ.get(DISABLE_ENV, "1") != "0" and (os.cpu_count() or 1) >= 2


class TierHelper:
    """One helper process, started on demand in the background. Thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._executor: ProcessPoolExecutor | None = None
        self._warm: Future | None = None
        self._broken = False

    def start(self, scenario: Scenario, custom_gpus: Iterable[GpuSpec] = (), custom_models: Iterable[ModelSpec] = (),
              calibration: Calibration | None = None) -> None:
        """Start the process (a fresh interpreter) and have it plan this scenario's helper tiers
        once, which imports the engine and warms its caches; `ready` turns true when that is done.
        Returns at once; does nothing if already started, broken or not wanted."""
        with self._lock:
            if self._executor is not None or self._broken or not wanted():
                return
            try:
                _start_resource_tracker()
                self._executor = ProcessPoolExecutor(max_workers=1, mp_context=multiprocessing.get_context("spawn"),
                                                     initializer=_quiet)
                self._warm = self._executor.submit(_plan_in_helper, scenario, HELPER_TIERS, list(custom_gpus), list(custom_models),
                                                   calibration)
            except Exception:  # no processes here (a sandbox, a resource limit): plan in one process
                self._broken = True
                self._executor = None

    @property
    def ready(self) -> bool:
        """Started, warmed and not broken."""
        warm = self._warm
        if self._broken or warm is None or not warm.done():
            return False
        if warm.exception() is not None:
            self._fail()
            return False
        return True

    def evaluate(self, scenario: Scenario, custom_gpus: Iterable[GpuSpec] = (), custom_models: Iterable[ModelSpec] = (),
                 calibration: Calibration | None = None):
        """plan.evaluate, with the helper tiers planned by the helper process when it is ready."""
        from planner.engine.plan import assemble, evaluate, plan_tiers

        gpus, models = list(custom_gpus), list(custom_models)
        executor = self._executor if self.ready else None
        if executor is None:
            return evaluate(scenario, gpus, models, calibration)
        try:
            theirs = executor.submit(_plan_in_helper, scenario, HELPER_TIERS, gpus, models, calibration)
        except Exception:  # the process died since (BrokenProcessPool) or is shutting down
            self._fail()
            return evaluate(scenario, gpus, models, calibration)
        ours = plan_tiers(scenario, OWN_TIERS, gpus, models, calibration)
        try:
            helped = theirs.result()
        except Exception as exc:
            if _raised_by_engine(exc):
                raise  # the engine's own error (a bad input, a bug): as planning here would raise it
            self._fail()
            helped = plan_tiers(scenario, HELPER_TIERS, gpus, models, calibration)
        return assemble(scenario, ours + helped)

    def clear_caches(self) -> None:
        """Forget the helper's remembered sizings (benchmarks time cold plans)."""
        executor = self._executor if self.ready else None
        if executor is not None:
            executor.submit(_clear_helper_caches).result()

    def wait_ready(self, timeout_s: float = 60.0) -> bool:
        """Block until the warm-up plan is done (benchmarks and tests); whether the helper is ready."""
        warm = self._warm
        if warm is None:
            return False
        try:
            warm.result(timeout=timeout_s)
        except Exception:
            pass
        return self.ready

    def shutdown(self) -> None:
        with self._lock:
            executor, self._executor, self._warm = self._executor, None, None
        if executor is not None:
            executor.shutdown(wait=False, cancel_futures=True)

    def _fail(self) -> None:
        self._broken = True
        self.shutdown()


def _raised_by_engine(exc: BaseException) -> bool:
    """An error the planning code raised in the helper (sent back with its remote traceback as
    the cause), not one of the process machinery (the process died, something would not pickle)."""
    from concurrent.futures.process import _RemoteTraceback

    return isinstance(exc.__cause__, _RemoteTraceback)


HELPER = TierHelper()  # one per process: every screen of the TUI shares it
