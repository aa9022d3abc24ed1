"""The planner's terminal UI (Textual)."""

import os

# Textual draws at most TEXTUAL_FPS frames a second (default 60). A keystroke draws twice: its echo
# at once and the plan 5-35 ms later, which at 60 fps could wait up to 17 ms for its turn (at 120,
# up to 8; the screens' FrameTimer removes Textual's extra skipped tick on top of that: frames.py).
# Frames are drawn only when something changed, so an idle screen costs nothing more. Set before
# Textual is first imported; a user's own setting wins.
os.environ.setdefault("TEXTUAL_FPS", "120")
