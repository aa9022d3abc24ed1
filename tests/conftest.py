import os
import sys
from pathlib import Path

# tests import their shared fixtures module by name
sys.path.insert(0, str(Path(__file__).parent))

# The TUI plans its large tier on a helper process once one is up; the suite plans in one process
# (no process per test session to start and stop) and tests the helper on its own (test_helper.py).
os.environ.setdefault("PLANNER_HELPER", "0")

# Hypothesis draws its examples from the strategies alone, not from the literals of the planner's code
# (which made derandomized examples change with any edit): tests/hypothesis_private.py.
from hypothesis_private import examples_from_strategies_only  # noqa: E402

examples_from_strategies_only()
