"""Containers: the state store (state.py) and the lifecycle (lifecycle.py)."""
