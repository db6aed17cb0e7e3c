"""Registry of spec checks. Each module registers its checks, in run order, with @check."""

import importlib
from dataclasses import dataclass
from typing import Callable, Optional

MODULES = ["lifecycle", "process", "linux", "mounts_devices", "hooks_cgroups"]


@dataclass
class Check:
    description: str
    section: str
    func: Callable
    todo: Optional[str] = None  # why runc fails it on the reference host (excuses runc only)
    deviation: Optional[str] = None  # a documented, deliberate departure from the spec (runc's and pyrunc's)


CHECKS = []


def check(description, section, todo=None, deviation=None):
    def deco(func):
        CHECKS.append(Check(description, section, func, todo, deviation))
        return func
    return deco


def load_all():
    for m in MODULES:
        importlib.import_module(f"{__name__}.{m}")
