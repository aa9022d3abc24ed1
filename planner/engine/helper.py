"""Helper processes for interactive planning: the tiers are independent, so they can be planned at
the same time on a machine with two cores or more. The engine is plain Python and numpy, which a
second thread in the same process could not run alongside the first, hence a process: it plans the
large tier while the calling thread plans the small and medium ones (about equal shares of a plan).
A second helper for those two measured slower on two cores (37-42 against 42-44 ms from keystroke
to frame): the pickling and a third busy process cost more than the app's thread saves.

The numbers are the same as `plan.evaluate`'s: the same functions run on the same inputs. Each
helper keeps its own sizing caches, and a tier always goes to the same helper, so a keystroke that
does not change a tier's sizing (a price, another tier's model) finds it remembered there. A helper
that is not ready yet, could not start or died has its tiers planned in the calling thread (one
that failed is not used again); an error of the engine itself is raised as planning here would.

Used by the TUI, where a plan runs on every keystroke; one-shot commands gain nothing from
starting a process (about 0.3 s) to save a few tens of milliseconds.
"""

from __future__ import annotations

import multiprocessing
import os
import sys
import threading
import types
import warnings
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from concurrent.futures import Future, ProcessPoolExecutor

from planner.engine.knobs import Calibration
from planner.engine.plan import assemble, clear_check_cache, evaluate, plan_tiers, workload_of
from planner.engine.scenario import Scenario
from planner.engine.specs import TIERS, GpuSpec, ModelSpec

GROUPS = (("large",),)  # the tiers each helper process plans; the calling thread plans the rest
DISABLE_ENV = "PLANNER_HELPER"  # "0": never start helper processes


def _quiet() -> None:
    """In a helper: nothing it prints (a numpy warning) may reach the terminal the TUI draws on."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 1)
    os.dup2(devnull, 2)
    warnings.simplefilter("ignore")


def _start_resource_tracker() -> None:
    """multiprocessing's resource tracker (a process of its own) inherits the caller's stderr by
    its file descriptor; a Textual app replaces sys.stderr with a capture whose descriptor is -1,
    which the tracker's start refuses. It starts with the process's own stderr instead."""
    if os.name != "posix":  # only POSIX systems track semaphores with it
        return
    from multiprocessing import resource_tracker

    captured = sys.stderr
    try:
        sys.stderr = sys.__stderr__ or captured
        resource_tracker.ensure_running()
    finally:
        sys.stderr = captured


@contextmanager
def _no_main_module() -> Iterator[None]:
    """A spawned process first runs the program's main script again (as __mp_main__) so that
    functions defined there can be unpickled; a script without an `if __name__ == "__main__"`
    guard would then run whole in the helper (a second app, a second benchmark). The helper needs
    only the engine, so it starts from an empty main module."""
    main = sys.modules.get("__main__")
    sys.modules["__main__"] = types.ModuleType("__main__")
    try:
        yield
    finally:
        if main is not None:
            sys.modules["__main__"] = main


def wanted() -> bool:
    """Whether helper processes can help here: two cores or more, and not turned off."""
    return os.environ.get(DISABLE_ENV, "1") != "0" and (os.cpu_count() or 1) >= 2


class _Helper:
    """One process planning one group of tiers."""

    def __init__(self, tiers: tuple[str, ...]) -> None:
        self.tiers = tiers
        self.executor: ProcessPoolExecutor | None = None
        self.warm: Future | None = None
        self.broken = False

    @property
    def ready(self) -> bool:
        warm = self.warm
        if self.broken or warm is None or not warm.done():
            return False
        if warm.exception() is not None:
            self.fail()
            return False
        return True

    def fail(self) -> None:
        self.broken = True
        self.stop()

    def stop(self) -> None:
        executor, self.executor, self.warm = self.executor, None, None
        if executor is not None:
            executor.shutdown(wait=False, cancel_futures=True)


class TierHelper:
    """Helper processes started on demand in the background, one per group of tiers. Thread-safe
    for one planning thread at a time (the TUI's plan worker is exclusive)."""

    def __init__(self, groups: tuple[tuple[str, ...], ...] = GROUPS) -> None:
        self._lock = threading.Lock()
        self._helpers = [_Helper(tiers) for tiers in groups]
        self._started = False

    def start(self, scenario: Scenario, custom_gpus: Iterable[GpuSpec] = (), custom_models: Iterable[ModelSpec] = (),
              calibration: Calibration | None = None) -> None:
        """Start the processes (fresh interpreters), each planning its tiers of this scenario once,
        which imports the engine and warms its caches; `ready` turns true when all are done.
        Returns at once; does nothing if already started or not wanted."""
        with self._lock:
            if self._started or not wanted():
                return
            self._started = True
            gpus, models = list(custom_gpus), list(custom_models)
            try:
                _start_resource_tracker()
                for helper in self._helpers:
                    helper.executor = ProcessPoolExecutor(max_workers=1, mp_context=multiprocessing.get_context("spawn"),
                                                          initializer=_quiet)
                    with _no_main_module():  # the process starts with its first task
                        helper.warm = helper.executor.submit(plan_tiers, scenario, helper.tiers, gpus, models, calibration)
            except Exception:  # no processes here (a sandbox, a resource limit): plan in one process
                for helper in self._helpers:
                    helper.fail()

    @property
    def ready(self) -> bool:
        """Every helper started, warmed and not broken."""
        return all(helper.ready for helper in self._helpers)

    def evaluate(self, scenario: Scenario, custom_gpus: Iterable[GpuSpec] = (), custom_models: Iterable[ModelSpec] = (),
                 calibration: Calibration | None = None):
        """plan.evaluate, each group of tiers planned by its helper when that one is ready."""
        gpus, models = list(custom_gpus), list(custom_models)
        sent: list[tuple[_Helper, Future]] = []
        for helper in self._helpers:
            executor = helper.executor if helper.ready else None
            if executor is None:
                continue
            try:
                sent.append((helper, executor.submit(plan_tiers, scenario, helper.tiers, gpus, models, calibration)))
            except Exception:  # died since (BrokenProcessPool) or shutting down
                helper.fail()
        if not sent:
            return evaluate(scenario, gpus, models, calibration)
        wl = workload_of(scenario)
        helped = {tier for helper, _ in sent for tier in helper.tiers}
        tiers = plan_tiers(scenario, [t for t in TIERS if t not in helped], gpus, models, calibration, wl)  # the rest, here
        for helper, future in sent:
            try:
                tiers += future.result()
            except Exception as exc:
                if _raised_by_engine(exc):
                    raise  # the engine's own error (a bad input, a bug): as planning here would raise it
                helper.fail()
                tiers += plan_tiers(scenario, helper.tiers, gpus, models, calibration, wl)
        return assemble(scenario, tiers, wl)

    def clear_caches(self) -> None:
        """Forget the helpers' remembered sizings (benchmarks time cold plans)."""
        for helper in self._helpers:
            executor = helper.executor if helper.ready else None
            if executor is not None:
                executor.submit(clear_check_cache).result()

    def wait_ready(self, timeout_s: float = 60.0) -> bool:
        """Block until the warm-up plans are done (benchmarks and tests); whether all are ready."""
        for helper in self._helpers:
            if helper.warm is None:
                return False
            try:
                helper.warm.result(timeout=timeout_s)
            except Exception:
                pass
        return self.ready

    def shutdown(self) -> None:
        for helper in self._helpers:
            helper.stop()

    def processes(self) -> list:
        """The helper processes (tests)."""
        return [process for helper in self._helpers if helper.executor is not None
                for process in helper.executor._processes.values()]


def _raised_by_engine(exc: BaseException) -> bool:
    """An error the planning code raised in a helper (sent back with its remote traceback as the
    cause), not one of the process machinery (the process died, something would not pickle)."""
    from concurrent.futures.process import _RemoteTraceback

    return isinstance(exc.__cause__, _RemoteTraceback)


HELPER = TierHelper()  # one set per process: every screen of the TUI shares it
