import sys
from pathlib import Path

# tests import their shared fixtures module by name
sys.path.insert(0, str(Path(__file__).parent))
