"""Whether n replicas meet every target under their share of the load (ReplicaCheck), remembered
per count and fidelity, and shared through a small thread-safe cache with the idle replica's floor."""

from __future__ import annotations

import math

from planner.engine.binding import UNSTABLE, Binding
from planner.engine.distributions import FULL, QUICK, Fidelity
from planner.engine.memo import Memo
from planner.engine.offline import OperatingPoint, offline_throughput
from planner.engine.open_loop import RateSolution, finish_rate_point, rate_point, solve_rate_point
from planner.engine.scenario import Scenario
from planner.engine.targets import percentile_of, slo_misses
from planner.engine.workload import Workload


class ReplicaCheck:
    """Does n replicas' share of the load meet every target? Remembered per count and fidelity (the
    gallop, the bisection and the confirmation revisit counts), and each count's fixed point is
    solved once for every fidelity it is finished at. Shared by every plan with the same targets,
    replica and load (`replica_check`), so treat what it returns as read-only."""

    def __init__(self, scenario: Scenario, p, wl: Workload, rate: float, default: Fidelity) -> None:
        self.scenario, self.p, self.wl, self.rate, self.default = scenario, p, wl, rate, default
        self.solved: dict[int, RateSolution] = {}
        self.checked: dict[tuple[int, Fidelity], tuple[bool, OperatingPoint]] = {}
        self._floor: OperatingPoint | None = None
        self._max_rate: float | None = None

    def floor(self) -> OperatingPoint:
        """The single-request floor: the replica with no load, at the search's fidelity."""
        if self._floor is None:
            self._floor = idle_floor(self.p, self.wl)
        return self._floor

    @property
    def max_rate(self) -> float:
        """One replica's saturation throughput (req/s)."""
        if self._max_rate is None:
            self._max_rate = offline_throughput(self.p, self.wl)[0]
        return self._max_rate

    def least_replicas(self) -> float:
        """Replicas the utilisation ceiling alone asks for: 0 with no load, inf with no capacity."""
        if self.rate <= 0:
            return 0
        usable = self.max_rate * self.scenario.slo.max_utilization  # 0 also where a tiny ceiling underflows
        needed = self.rate / usable if usable > 0 else math.inf
        return max(1, math.ceil(needed - 1e-9)) if math.isfinite(needed) else math.inf

    def over_ceiling(self, n: int) -> bool:
        """Whether n replicas' share of the load puts each over the utilisation ceiling (or over
        its capacity): arithmetic on the saturation throughput, nothing solved."""
        if self.max_rate <= 0:
            return True
        return self.rate / n / self.max_rate > self.scenario.slo.max_utilization + 1e-9

    def misses_at_full(self, n: int) -> tuple[list[str], OperatingPoint | None]:
        """The targets n replicas miss at full fidelity (the numbers shown), sampling at full
        fidelity only when cheaper evidence cannot tell: over the utilisation ceiling is arithmetic
        on the capacity, and an unstable replica or a quick-fidelity percentile far over its
        target misses at full fidelity too. The point is None when nothing was solved."""
        if self.over_ceiling(n):
            return [Binding.UTILISATION_CEILING], None
        quick_misses, quick = self.misses(n, QUICK)
        if UNSTABLE in quick_misses or _clearly_misses(self.scenario, quick):
            return quick_misses, quick
        return self.misses(n, FULL)

    def __call__(self, n: int, fidelity: Fidelity | None = None) -> tuple[bool, OperatingPoint]:
        misses, point = self.misses(n, fidelity)
        return not misses, point

    def misses(self, n: int, fidelity: Fidelity | None = None) -> tuple[list[str], OperatingPoint]:
        """The targets n replicas miss (with the utilisation ceiling), and their operating point."""
        key = (n, fidelity or self.default)
        if key not in self.checked:
            if n not in self.solved:
                self.solved[n] = solve_rate_point(self.p, self.wl, self.rate / n)
            pt = finish_rate_point(self.p, self.wl, self.solved[n], fidelity=key[1])
            self.checked[key] = (slo_misses(self.scenario, pt, self.scenario.slo.max_utilization), pt)
        return self.checked[key]


CLEAR_MISS = 1.25  # quick-fidelity percentile over target by this factor: a miss at full fidelity too


def _clearly_misses(scenario: Scenario, quick: OperatingPoint) -> bool:
    """Whether a quick-fidelity point misses a latency target by CLEAR_MISS or more. Quick p99s
    have come out 0.79-1.09 times the full-fidelity ones (96 operating points of five models with
    and without speculation, chunking and prefix hits, 2-90% load), p90s 0.94-1.09, so such a miss
    is a miss at full fidelity and needs no full-fidelity sampling to show it."""
    slo = scenario.slo
    checks = ((slo.ttft_ms, slo.ttft_percentile, quick.ttft_s), (slo.tpot_ms, slo.tpot_percentile, quick.tpot_s),
              (slo.e2e_ms, slo.e2e_percentile, quick.e2e_s))
    return any(target_ms is not None and percentile_of(dist, pct) * 1e3 > CLEAR_MISS * target_ms
               for target_ms, pct, dist in checks)


# Checks of recent (targets, replica, workload, load) combinations: most keystrokes change one tier's
# model, a price or nothing the sizing reads, and then the other tiers' solved counts are reused.
# Thread-safe: the TUI plans, sweeps and searches in worker threads.
CHECK_CACHE_ENTRIES = 256
_CHECKS: Memo[tuple, ReplicaCheck] = Memo(CHECK_CACHE_ENTRIES)
_FLOORS: Memo[tuple, OperatingPoint] = Memo(CHECK_CACHE_ENTRIES)


def replica_check(scenario: Scenario, p, wl: Workload, rate: float) -> ReplicaCheck:
    key = (tuple(scenario.slo.model_dump().values()), p, workload_key(wl), float(rate))
    return _CHECKS.get_or_make(key, lambda: ReplicaCheck(scenario, p, wl, rate, QUICK))


def idle_floor(p, wl: Workload) -> OperatingPoint:
    """The replica with no load (one request at a time), remembered by replica and workload: it
    does not depend on the rate or the targets, which most sizing keystrokes change."""
    return _FLOORS.get_or_make((p, workload_key(wl)), lambda: rate_point(p, wl, 0.0, fidelity=QUICK))


def clear_check_cache() -> None:
    """Forget every remembered check and floor (benchmarks time the engine cold with this)."""
    _CHECKS.clear()
    _FLOORS.clear()


def workload_key(wl: Workload) -> tuple:
    """A workload as a cache key (its length distributions' fields)."""
    return tuple(wl.input_len.model_dump().values()) + tuple(wl.output_len.model_dump().values())
