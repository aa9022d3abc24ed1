"""From a plan to the commands and manifests that deploy and benchmark it (`planner export`)."""
