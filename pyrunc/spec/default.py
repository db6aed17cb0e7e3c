"""The default config.json `pyrunc spec` writes: the same as `runc spec` (and `runc spec --rootless`)."""

import copy

from .. import OCI_VERSION

_CAPS = ["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"]
_MASKED = ["/proc/acpi", "/proc/asound", "/proc/kcore", "/proc/keys", "/proc/latency_stats", "/proc/timer_list",
           "/proc/timer_stats", "/proc/sched_debug", "/sys/firmware", "/proc/scsi"]
_READONLY = ["/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"]

_BASE = {
    "ociVersion": OCI_VERSION,
    "process": {
        "terminal": True,
        "user": {"uid": 0, "gid": 0},
        "args": ["sh"],
        "env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "TERM=xterm"],
        "cwd": "/",
        "capabilities": {"bounding": _CAPS, "effective": _CAPS, "permitted": _CAPS, "ambient": _CAPS},
        "rlimits": [{"type": "RLIMIT_NOFILE", "hard": 1024, "soft": 1024}],
        "noNewPrivileges": True,
    },
    "root": {"path": "rootfs", "readonly": True},
    "hostname": "pyrunc",
    "mounts": [
        {"destination": "/proc", "type": "proc", "source": "proc"},
        {"destination": "/dev", "type": "tmpfs", "source": "tmpfs",
         "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]},
        {"destination": "/dev/pts", "type": "devpts", "source": "devpts",
         "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"]},
        {"destination": "/dev/shm", "type": "tmpfs", "source": "shm",
         "options": ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"]},
        {"destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue", "options": ["nosuid", "noexec", "nodev"]},
        {"destination": "/sys", "type": "sysfs", "source": "sysfs", "options": ["nosuid", "noexec", "nodev", "ro"]},
        {"destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup",
         "options": ["nosuid", "noexec", "nodev", "relatime", "ro"]},
    ],
    "linux": {
        "resources": {"devices": [{"allow": False, "access": "rwm"}]},
        "namespaces": [{"type": "pid"}, {"type": "network"}, {"type": "ipc"}, {"type": "uts"}, {"type": "mount"}],
        "maskedPaths": _MASKED,
        "readonlyPaths": _READONLY,
    },
}


def default_config(rootless=False, uid=0, gid=0):
    c = copy.deepcopy(_BASE)
    if rootless:
        c["mounts"][2]["options"].remove("gid=5")
        c["mounts"][5] = {"destination": "/sys", "type": "none", "source": "/sys",
                          "options": ["rbind", "nosuid", "noexec", "nodev", "ro"]}
        lx = c["linux"]
        del lx["resources"]
        lx["uidMappings"] = [{"containerID": 0, "hostID": uid, "size": 1}]
        lx["gidMappings"] = [{"containerID": 0, "hostID": gid, "size": 1}]
        lx["namespaces"] = [{"type": "pid"}, {"type": "ipc"}, {"type": "uts"}, {"type": "mount"}, {"type": "user"}]
        c["linux"] = {"uidMappings": lx.pop("uidMappings"), "gidMappings": lx.pop("gidMappings"), **lx}
    return c
