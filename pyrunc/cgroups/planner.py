"""The v1/v2 dispatcher moved into manager.py (plan_writes): one module less on every create.  This name stays
for the shim daemon's warm-up, which imports it to load the planners before its first create."""

from pyrunc.cgroups import v1, v2  # noqa: F401: loaded for the warm-up
from pyrunc.cgroups.manager import V1_TO_V2, plan_writes as plan  # noqa: F401
