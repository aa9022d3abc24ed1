"""The planner's terminal UI (Textual)."""
