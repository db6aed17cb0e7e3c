"""The compiler of the static pyrunc-init stub (csrc/pyrunc_init.c), for setup.py and the tests that build one."""

import os
import shutil
import subprocess


def stub_compiler():
    """The stub's compiler: PYRUNC_INIT_CC if set, else musl-gcc where it is installed (Debian's musl-tools), else CC
    or cc.  A static glibc program spends ~0.2-0.6 ms before main() on this VM (its start-up detects the CPU's
    caches through CPUID, which traps in a VM), musl's ~0.02 ms, and the musl stub is ~55 KB instead of ~700 KB
    (copied into a memfd on every create).  musl has no kernel headers of its own: <linux/...> and <asm/...> come
    from the system's (linux-libc-dev), searched after musl's."""
    if os.environ.get("PYRUNC_INIT_CC"):
        return os.environ["PYRUNC_INIT_CC"].split()
    if shutil.which("musl-gcc"):
        arch = subprocess.run(["gcc", "-print-multiarch"], capture_output=True, text=True).stdout.strip()
        dirs = ["/usr/include"] + ([f"/usr/include/{arch}"] if arch else [])
        return ["musl-gcc"] + [f for d in dirs for f in ("-idirafter", d)]
    return [os.environ.get("CC", "cc")]
