import os
import sys
from pathlib import Path

# tests import their shared fixtures module by name
sys.path.insert(0, str(Path(__file__).parent))

# The TUI plans its large tier on a helper process once one is up; the suite plans in one process
# (no process per test session to start and stop) and tests the helper on its own (test_helper.py).
os.environ.setdefault("PLANNER_HELPER", "0")

# Hypothesis also draws some inputs from the literals of the code under test (the planner's own
# modules, installed editable). With derandomized runs that made the examples change with any edit
# of the code, even one the properties do not touch; the examples come from the strategies alone.
try:
    from hypothesis.internal.conjecture import providers as _hypothesis_providers

    _NO_CONSTANTS = type(_hypothesis_providers._local_constants)()
    _hypothesis_providers._get_local_constants = lambda: _NO_CONSTANTS
except (ImportError, AttributeError, TypeError):  # another Hypothesis: its own behaviour
    pass
