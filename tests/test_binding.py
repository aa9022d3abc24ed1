"""Sizing reasons are an enum in code and the same strings in the JSON and TOML users' scripts read."""

from __future__ import annotations

import json
import tomllib

import tomli_w

from planner.engine.binding import UNSTABLE, Binding
from planner.engine.plan import evaluate
from planner.engine.scenario import Load, Scenario, Targets
from planner.report import plan_json

# The `binding` values the README and scripts know: renaming one breaks them.
CONTRACT = {"utilisation ceiling", "one replica suffices", "no load", "fleet size", "memory capacity",
            "hardware support", "interconnect", "parallelism", "context limit"}


def test_the_members_are_the_contract_strings():
    assert {b.value for b in Binding} == CONTRACT
    assert UNSTABLE == "unstable"
    assert all(b == b.value and str(b) == b.value and f"{b}" == b.value for b in Binding)


def test_a_plan_writes_its_bindings_as_plain_strings():
    plan = evaluate(Scenario(load=Load(rate_rps=20.0, input_len=500, output_len=200), slo=Targets(max_utilization=0.5)))
    bindings = [t.binding for t in plan.tiers]
    assert Binding.UTILISATION_CEILING in bindings or Binding.ONE_REPLICA in bindings
    data = plan_json(plan)
    assert [type(t["binding"]) for t in json.loads(json.dumps(data))["tiers"]] == [str] * 3
    assert [t["binding"] for t in json.loads(json.dumps(data))["tiers"]] == [str(b) for b in bindings]
    toml = tomllib.loads(tomli_w.dumps({"tiers": [{"binding": t["binding"]} for t in data["tiers"]]}))
    assert [t["binding"] for t in toml["tiers"]] == [str(b) for b in bindings]
    assert '"binding": "' in json.dumps(data)  # a string, never an enum's repr
