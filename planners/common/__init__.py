"""Helpers several planner kinds share: layer-DAG linearisation, the PipeDream profile reader."""
