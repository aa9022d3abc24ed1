"""planner: a terminal capacity planner for serving large language models."""

__version__ = "0.1.0"
