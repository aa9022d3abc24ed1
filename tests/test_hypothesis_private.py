"""The Hypothesis hook the suite relies on (tests/hypothesis_private.py) exists in this Hypothesis."""

import hypothesis
import hypothesis_private


def test_this_hypothesis_has_the_private_hook_the_tests_use():
    missing = hypothesis_private.missing()
    assert not missing, (f"Hypothesis {hypothesis.__version__} lacks {', '.join(missing)}: its examples may follow "
                         "the literals of the planner's code; update tests/hypothesis_private.py")
    from hypothesis.internal.conjecture import providers

    assert len(providers._get_local_constants()) == 0  # conftest applied it
