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
from multiprocessing.connection import Connection
from multiprocessing.context import BaseContext
from multiprocessing.process import BaseProcess

from planner.engine.knobs import Calibration
from planner.engine.plan import assemble, evaluate, plan_tiers, workload_of
from planner.engine.replica_checks import clear_check_cache
from planner.engine.scenario import Scenario
from planner.engine.specs import TIERS, GpuSpec, ModelSpec

GROUPS = (("large",),)  # the tiers each helper process plans; the calling thread plans the rest
DISABLE_ENV = "PLANNER_HELPER"  # "0": never start helper processes
BUSY_TIMEOUT_S = 5.0  # a request waits this long for the previous one's reply to be collected


def _quiet() -> None:
    """In a helper: nothing it prints (a numpy warning) may reach the terminal the TUI draws on."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 1)
    os.dup2(devnull, 2)
    warnings.simplefilter("ignore")


def _start_resource_tracker() -> None:
    """Starting a spawned process on POSIX first starts multiprocessing's resource tracker (a
    process of its own), which inherits the caller's stderr by its file descriptor; a Textual app
    replaces sys.stderr with a capture whose descriptor is -1, which the tracker's start refuses.
    It starts with the process's own stderr instead."""
    if os.name != "posix":  # elsewhere there is no tracker
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
    """One process planning one group of tiers, spoken to over a pipe: the calling thread sends a
    request itself and later reads the reply. (A ProcessPoolExecutor hands a request to two threads
    of its own, a manager and a queue feeder, which wait for the interpreter lock while the calling
    thread plans: the helper started its tier 3-5 ms after it was asked, on every keystroke.)"""

    def __init__(self, tiers: tuple[str, ...]) -> None:
        self.tiers = tiers
        self.process: BaseProcess | None = None
        self.conn: Connection | None = None
        self.warm: threading.Event | None = None  # set once the warm-up request has come back
        self.broken = False
        self._busy = threading.Lock()  # one request at a time: held from send to receive

    @property
    def ready(self) -> bool:
        warm = self.warm
        return not self.broken and self.conn is not None and warm is not None and warm.is_set()

    def start(self, context: BaseContext, request: tuple) -> None:
        """Start the process and, in the background, its warm-up request (which sets `warm`)."""
        parent, child = context.Pipe()
        process = context.Process(target=_serve, args=(child,), daemon=True, name=f"planner-{'-'.join(self.tiers)}")
        with _no_main_module():
            process.start()
        child.close()
        self.process, self.conn, self.warm = process, parent, threading.Event()
        threading.Thread(target=self._warm_up, args=(request, self.warm), daemon=True).start()

    def _warm_up(self, request: tuple, warm: threading.Event) -> None:
        if not self.send(*request) or self.receive()[0] != "ok":
            self.fail()
        warm.set()

    def send(self, fn, *args) -> bool:
        """Ask the process for fn(*args); False (and the helper failed) if it cannot be asked.
        Every True must be followed by one `receive`."""
        if not self._busy.acquire(timeout=BUSY_TIMEOUT_S):  # a reply never collected: the talk is out of step
            self.fail()
            return False
        try:
            conn = self.conn
            if conn is None:
                raise OSError("stopped")
            conn.send((fn, args))
            return True
        except Exception:  # the process died (broken pipe), or an argument would not pickle
            self._busy.release()
            self.fail()
            return False

    def receive(self) -> tuple[str, object]:
        """The reply to the request sent: ("ok", result), ("error", the exception the engine
        raised there), or ("failed", None) when the process died or the reply was lost."""
        try:
            conn = self.conn
            if conn is None:
                return "failed", None
            return conn.recv()
        except Exception:  # EOF: the process died; OSError: stopped meanwhile
            return "failed", None
        finally:
            self._busy.release()

    def fail(self) -> None:
        self.broken = True
        self.stop()

    def stop(self) -> None:
        conn, process = self.conn, self.process
        self.conn = self.process = None
        if conn is not None:
            try:
                conn.send(None)  # the process exits once it has answered what it is doing
            except Exception:
                pass
            conn.close()
        if process is not None:
            process.join(timeout=0.2)
            if process.is_alive():
                process.terminate()
                process.join(timeout=1.0)


def _serve(conn: Connection) -> None:
    """A helper process: answer requests (fn, args) until told to stop (None) or the app is gone."""
    _quiet()
    while True:
        try:
            request = conn.recv()
        except Exception:  # the app is gone (EOF), or closed the pipe mid-message while quitting
            return
        if request is None:
            return
        fn, args = request
        try:
            reply: tuple[str, object] = ("ok", fn(*args))
        except Exception as exc:  # the engine's error: raised again in the caller
            reply = ("error", exc)
        try:
            conn.send(reply)
        except Exception as exc:  # the result or the error would not pickle
            conn.send(("error", RuntimeError(f"helper reply: {type(exc).__name__}: {exc}")))


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
                context = multiprocessing.get_context("spawn")
                for helper in self._helpers:
                    helper.start(context, (plan_tiers, scenario, helper.tiers, gpus, models, calibration))
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
        sent = [helper for helper in self._helpers
                if helper.ready and helper.send(plan_tiers, scenario, helper.tiers, gpus, models, calibration)]
        if not sent:
            return evaluate(scenario, gpus, models, calibration)
        wl = workload_of(scenario)
        helped = {tier for helper in sent for tier in helper.tiers}
        try:
            tiers = plan_tiers(scenario, [t for t in TIERS if t not in helped], gpus, models, calibration, wl)  # the rest, here
        finally:
            replies = [(helper, helper.receive()) for helper in sent]  # every request answered, even after an error
        for helper, (kind, value) in replies:
            if kind == "error":
                raise value  # the engine's own error (a bad input, a bug): as planning here would raise it
            if kind == "failed":
                helper.fail()
                value = plan_tiers(scenario, helper.tiers, gpus, models, calibration, wl)
            tiers += value
        return assemble(scenario, tiers, wl)

    def clear_caches(self) -> None:
        """Forget the helpers' remembered sizings (benchmarks time cold plans)."""
        for helper in self._helpers:
            if helper.ready and helper.send(clear_check_cache):
                helper.receive()

    def wait_ready(self, timeout_s: float = 60.0) -> bool:
        """Block until the warm-up plans are done (benchmarks and tests); whether all are ready."""
        for helper in self._helpers:
            warm = helper.warm
            if warm is None:
                return False
            warm.wait(timeout_s)
        return self.ready

    def shutdown(self) -> None:
        for helper in self._helpers:
            helper.stop()

    def processes(self) -> list[BaseProcess]:
        """The helper processes (tests)."""
        return [helper.process for helper in self._helpers if helper.process is not None]


HELPER = TierHelper()  # one set per process: every screen of the TUI shares it
