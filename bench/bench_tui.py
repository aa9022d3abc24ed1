"""Speed of the planner TUI, measured with Textual's test pilot (headless, 160x48).

    python bench/bench_tui.py [--keys N] [--no-helper]

Prints:
- cold start: a fresh Python process, from launch to the first frame the app draws, and to the
  first frame that shows the plan (target: first frame under 1.0 s on a 2-core machine);
- keystroke to updated results: a digit typed into the peak-rate input, until the results table
  holds the new plan, and until the frame showing it is drawn (target under 50 ms); also the
  engine's share (the plan and its JSON, from the worker thread, the large tier planned on the
  helper process once that is up: timed after it is) and the rest, which is the TUI's, and the
  CPU time of the app's process over the same span (the helper's not counted): on a shared machine
  wall times follow the neighbours' load, CPU time much less.
  The TUI's plan cache, the engine's sizing cache and the latency chart's points are cleared
  before each key, so every keystroke runs the whole engine;
- the same for a digit typed into the GPU price input with the caches kept, as in use: a price does
  not change the sizing, so the engine reuses the solved replica counts and only the costs change;
- and for keys that go back and forth between the saved rate and an edit, so the header's
  " · modified" marker comes and goes with each key (sizing cached after the first pair).

Keys reach the app through its driver, as a terminal's do; timestamps come from hooks on the app
(the results handler and the display write), not from `pilot.press`, which also waits for every
widget to go idle.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SIZE = (160, 48)

CHILD = r"""
import asyncio, json, sys, time
T0 = float(sys.argv[1])
from planner.tui.app import make_app

async def main():
    app = make_app()
    first = {}
    display = app._display

    def hooked(screen, renderable):
        now = time.time()
        first.setdefault("frame", now)
        if getattr(app, "_is_ready_for_plan", False) and "plan" not in first:
            first["plan"] = now
        return display(screen, renderable)

    app._display = hooked
    async with app.run_test(size=(%d, %d)) as pilot:
        while app.planner.result is None:
            await asyncio.sleep(0.001)
        app._is_ready_for_plan = True
        app.planner.refresh()
        while "plan" not in first:
            await asyncio.sleep(0.001)
    print(json.dumps({"frame": first["frame"] - T0, "plan": first["plan"] - T0}))

asyncio.run(main())
""" % SIZE  # noqa: UP031 (a template of Python code, full of braces)


def cold_start(runs: int) -> list[dict]:
    out = []
    env = dict(os.environ, PLANNER_CONFIG_DIR=tempfile.mkdtemp(prefix="planner-bench-"))
    for _ in range(runs):
        t0 = time.time()
        proc = subprocess.run([sys.executable, "-c", CHILD, repr(t0)], capture_output=True, text=True, env=env,
                              cwd=Path(__file__).resolve().parent.parent, check=True)
        out.append(json.loads(proc.stdout.strip().splitlines()[-1]))
    return out


async def keystrokes(count: int, input_id: str = "load-rate-rps", cold: bool = True,
                     first: str = "backspace") -> tuple[list[float], list[float], list[float], list[float], bool]:
    from planner.engine.helper import HELPER
    from planner.engine.replica_checks import clear_check_cache
    from planner.tui import compute as compute_module
    from planner.tui.app import make_app
    from planner.tui.screens import main as main_module
    from planner.tui.testing import send_keys, settle

    engine_ms: list[float] = []
    real_compute = compute_module.compute

    def timed_compute(*args, **kwargs):
        t = time.perf_counter()
        try:
            return real_compute(*args, **kwargs)
        finally:
            engine_ms.append((time.perf_counter() - t) * 1e3)

    main_module.compute = timed_compute
    marks: dict[str, float] = {}
    drawn_now = asyncio.Event()  # set by the display hook: no polling loop competing with the app for the CPU
    real_ready = main_module.PlannerScreen.on_plan_ready

    def on_plan_ready(self, message):
        real_ready(self, message)
        if message.generation == self.generation:
            marks.setdefault("results", time.perf_counter())

    main_module.PlannerScreen.on_plan_ready = on_plan_ready
    app = make_app()
    display = app._display

    def hooked(screen, renderable):
        if "results" in marks and "drawn" not in marks:
            marks["drawn"] = time.perf_counter()
            drawn_now.set()
        return display(screen, renderable)

    app._display = hooked
    results, drawn, cpu = [], [], []
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        helped = HELPER.wait_ready()  # the helper process starts after the first plan
        app.planner.query_one(f"#{input_id}").focus()
        await pilot.pause()
        await pilot.press("end")  # focusing selects the text; put the cursor after it
        # one edit first, untimed: the timed keys then toggle between two edited values, as typing
        # does, instead of between the saved profile and an edit (which retitles the screen each time)
        if first:
            await pilot.press(first)
        await settle(pilot)
        engine_ms.clear()
        for i in range(count):
            marks.clear()
            drawn_now.clear()
            compute_module.PLANS.clear()  # time the engine, not the cache of whole plans
            if cold:
                clear_check_cache()
                HELPER.clear_caches()
                compute_module.CURVE_POINTS.clear()  # and the latency chart's operating points
            key = "5" if i % 2 == 0 else "backspace"  # rate 1 -> 15 -> 1 -> ..., price 4 -> 45 -> 4
            t0, cpu0 = time.perf_counter(), time.process_time()
            send_keys(app, key)
            await drawn_now.wait()
            cpu.append((time.process_time() - cpu0) * 1e3)
            results.append((marks["results"] - t0) * 1e3)
            drawn.append((marks["drawn"] - t0) * 1e3)
            await settle(pilot)  # charts and the cost sweep finish before the next key
    return results, drawn, engine_ms, cpu, helped


def summary(values: list[float], unit: str = "ms") -> str:
    values = sorted(values)
    p90 = values[min(len(values) - 1, int(round(0.9 * (len(values) - 1))))]
    return f"median {statistics.median(values):6.1f} {unit}   p90 {p90:6.1f} {unit}   max {values[-1]:6.1f} {unit}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keys", type=int, default=20, help="keystrokes to time (default 20)")
    parser.add_argument("--starts", type=int, default=5, help="cold starts to time (default 5)")
    parser.add_argument("--no-helper", action="store_true", help="plan every tier in the worker thread (no helper process)")
    args = parser.parse_args()
    if args.no_helper:
        os.environ["PLANNER_HELPER"] = "0"
    os.environ.setdefault("PLANNER_CONFIG_DIR", tempfile.mkdtemp(prefix="planner-bench-"))
    print(f"planner TUI benchmark: {os.cpu_count()} CPUs, Python {sys.version.split()[0]}, {SIZE[0]}x{SIZE[1]}")
    starts = cold_start(args.starts)
    print(f"cold start to first frame      {summary([s['frame'] * 1e3 for s in starts])}   (target < 1000 ms)")
    print(f"cold start to plan on screen   {summary([s['plan'] * 1e3 for s in starts])}")
    series = (("peak rate 1 <-> 15 req/s, engine cold", "load-rate-rps", True, "backspace"),
              ("GPU price 4 <-> 45 $/h, caches kept", "fleet-price-usd-hour", False, "4"),
              ("peak rate 10 <-> 105 req/s from the saved value, the title's 'modified' marker toggling, caches kept",
               "load-rate-rps", False, ""))
    for title, input_id, cold, first in series:
        results, drawn, engine, cpu, helped = asyncio.run(keystrokes(args.keys, input_id, cold, first))
        where = "large tier on the helper process" if helped else "every tier in the plan worker thread"
        print(f"keystroke ({title}; {where}):")
        print(f"  to results updated           {summary(results)}")
        print(f"  to frame drawn               {summary(drawn)}   (target < 50 ms)")
        if cold:  # the keys alternate between the two values: each direction apart
            print(f"    of which up (to the larger value)   {summary(drawn[0::2])}")
            print(f"    of which down (to the smaller one)  {summary(drawn[1::2])}")
        print(f"  CPU time of this process     {summary(cpu)}   (the helper process's not counted)")
        print(f"  of which engine (worker)     {summary(engine)}")
        if len(engine) == len(drawn):
            print(f"  TUI's own share (drawn − engine) {summary([d - e for d, e in zip(drawn, engine)])}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
