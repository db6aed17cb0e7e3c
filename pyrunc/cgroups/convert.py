"""Pure conversions between cgroup v1 and v2 value spaces (runc libcontainer/cgroups/utils.go).

They are pure so that property tests can pin their bounds and monotonicity.
"""

from pyrunc.errors import ConfigError


def shares_to_weight(shares):
    """cpu.shares [2, 262144] -> cpu.weight [1, 10000]; 0 means unset (runc ConvertCPUSharesToCgroupV2Value).

    The linear map sends the v1 default 1024 to 39, not to the v2 default 100: runc does the same and callers
    (kubelet, docker) rely on that exact number, so do not "fix" it.
    """
    if not shares:
        return 0
    return 1 + ((shares - 2) * 9999) // 262142


def blkio_weight_to_io_weight(weight):
    """blkio.weight [10, 1000] -> io.weight [1, 10000]; 0 means unset (runc ConvertBlkIOToIOWeightValue)."""
    if not weight:
        return 0
    return 1 + (weight - 10) * 9999 // 990


def swap_to_v2(swap, memory):
    """OCI memory.swap is memory+swap (a v1 notion); v2 memory.swap.max is swap alone.

    Returns the v2 value: -1 means "max", 0 means unset (runc ConvertMemorySwapToCgroupV2Value).
    """
    swap = swap or 0
    memory = memory or 0
    if memory == -1 and swap == 0:
        # v1 compatibility: unlimited memory with swap unset means both unlimited.
        return -1
    if swap in (-1, 0):
        return swap
    if memory in (0, -1):
        raise ConfigError("unable to set swap limit without memory limit")
    if memory < 0:
        raise ConfigError(f"invalid memory value: {memory}")
    if swap < memory:
        raise ConfigError("memory+swap limit should be >= memory limit")
    return swap - memory


def num_to_v2(value):
    """int64 -> v2 file text: 0 is unset (""), -1 is "max" (runc numToStr)."""
    if not value:
        return ""
    if value == -1:
        return "max"
    return str(value)
