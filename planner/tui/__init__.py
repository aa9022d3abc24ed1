"""The planner's terminal UI (Textual)."""

import os

# Textual draws at most TEXTUAL_FPS frames a second (default 60), and after an idle spell its frame
# timer skips ahead a tick: the frame with a new plan went out 17-33 ms after the plan was ready.
# At 120 that wait is 8-17 ms. Frames are drawn only when something changed, so an idle screen
# costs nothing more. Set before Textual is first imported; a user's own setting wins.
os.environ.setdefault("TEXTUAL_FPS", "120")
