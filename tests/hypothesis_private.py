"""Every use of Hypothesis's private names in the tests, in one place (no public setting does it).

Hypothesis also draws some inputs from the literals of the code under test (the planner's own
modules, installed editable). With derandomized runs that made the examples change with any edit
of the code, even one the properties do not touch; `examples_from_strategies_only` makes the
examples come from the strategies alone. Tested with Hypothesis 6.170; another version that lacks
the hook keeps its own behaviour, and `missing()` names what it lacks (test_hypothesis_private.py)."""

from __future__ import annotations

PRIVATE_NAMES = ("hypothesis.internal.conjecture.providers._local_constants",
                 "hypothesis.internal.conjecture.providers._get_local_constants")


def missing() -> list[str]:
    """The private names this Hypothesis lacks."""
    try:
        from hypothesis.internal.conjecture import providers
    except ImportError:
        return list(PRIVATE_NAMES)
    return [name for name in PRIVATE_NAMES if not hasattr(providers, name.rsplit(".", 1)[1])]


def examples_from_strategies_only() -> bool:
    """Stop Hypothesis drawing constants from the code under test; False when it cannot be done."""
    if missing():
        return False
    from hypothesis.internal.conjecture import providers

    no_constants = type(providers._local_constants)()
    providers._get_local_constants = lambda: no_constants
    return True
