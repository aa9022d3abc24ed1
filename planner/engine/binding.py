"""What set a tier's replica count, or why it has no fleet: the `binding` of a sizing, a tier plan
and a search candidate. The values are the strings of the JSON contract (`binding`): a member equals
its string and json/TOML write it unchanged, so users' scripts see what they always saw. A latency
target that binds is named by the target itself ("TTFT p99", targets.slo_misses), not by a member."""

from __future__ import annotations

from enum import StrEnum


class Binding(StrEnum):
    # sized, feasible
    UTILISATION_CEILING = "utilisation ceiling"  # one replica fewer would run above slo.max_utilization
    ONE_REPLICA = "one replica suffices"
    NO_LOAD = "no load"  # a rate of 0: no replicas are needed
    FLEET_SIZE = "fleet size"  # capped at fleet.max_gpus
    # no fleet (feasibility.fleet_problem)
    MEMORY = "memory capacity"
    HARDWARE = "hardware support"
    INTERCONNECT = "interconnect"
    PARALLELISM = "parallelism"
    CONTEXT = "context limit"


# A miss that is no target: the load exceeds what the replica can serve (targets.slo_misses).
UNSTABLE = "unstable"
