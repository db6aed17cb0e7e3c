"""schemas/*.json and pyrunc.spec.validate: good configs pass, bad ones fail with the exact message, and the
fast path never imports jsonschema.

The sample configs here are also used by test_fastcheck.py (loaded by file path, tests/unit is not a package).
"""

import copy
import json
import os
import shutil
import subprocess
import sys

import pytest

import pyrunc
from pyrunc.errors import ConfigError
from pyrunc.spec import fastcheck
from pyrunc.spec.explain import jsonschema_validator
from pyrunc.spec.validate import (CONFIG_SCHEMA, STATE_SCHEMA, load_schema, validate_config, validate_process,
                                  validate_resources, validate_state)
from tests.conftest import require

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

# What `runc spec` (runc 1.1.5) writes, verbatim but for indentation.
RUNC_DEFAULT = json.loads("""
{"ociVersion": "1.0.2-dev",
 "process": {"terminal": true, "user": {"uid": 0, "gid": 0}, "args": ["sh"],
   "env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "TERM=xterm"],
   "cwd": "/",
   "capabilities": {
     "bounding": ["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"],
     "effective": ["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"],
     "permitted": ["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"],
     "ambient": ["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"]},
   "rlimits": [{"type": "RLIMIT_NOFILE", "hard": 1024, "soft": 1024}],
   "noNewPrivileges": true},
 "root": {"path": "rootfs", "readonly": true},
 "hostname": "runc",
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
    "options": ["nosuid", "noexec", "nodev", "relatime", "ro"]}],
 "linux": {
   "resources": {"devices": [{"allow": false, "access": "rwm"}]},
   "namespaces": [{"type": "pid"}, {"type": "network"}, {"type": "ipc"}, {"type": "uts"}, {"type": "mount"}],
   "maskedPaths": ["/proc/acpi", "/proc/asound", "/proc/kcore", "/proc/keys", "/proc/latency_stats",
                   "/proc/timer_list", "/proc/timer_stats", "/proc/sched_debug", "/sys/firmware", "/proc/scsi"],
   "readonlyPaths": ["/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"]}}
""")

# Every section the schema knows about, filled in (spec 1.2 field names and value ranges).
FULL = copy.deepcopy(RUNC_DEFAULT)
FULL["ociVersion"] = "1.2.0"
FULL["domainname"] = "example.org"
FULL["annotations"] = {"io.kubernetes.cri.container-type": "sandbox", "com.example.key": ""}
FULL["mounts"].append({"destination": "/data", "source": "/srv/data", "type": "bind", "options": ["rbind", "ro"],
                       "uidMappings": [{"containerID": 0, "hostID": 100000, "size": 65536}],
                       "gidMappings": [{"containerID": 0, "hostID": 100000, "size": 65536}]})
FULL["process"].update({
    "consoleSize": {"height": 24, "width": 80},
    "user": {"uid": 1000, "gid": 1000, "umask": 18, "additionalGids": [5, 4294967295], "username": "app"},
    "commandLine": "sh -c true",
    "apparmorProfile": "docker-default",
    "oomScoreAdj": -999,
    "selinuxLabel": "system_u:system_r:container_t:s0:c1,c2",
    "scheduler": {"policy": "SCHED_DEADLINE", "nice": -5, "priority": 0, "flags": ["SCHED_FLAG_RESET_ON_FORK"],
                  "runtime": 10000000, "deadline": 20000000, "period": 18446744073709551615},
    "ioPriority": {"class": "IOPRIO_CLASS_BE", "priority": 4},
    "execCPUAffinity": {"initial": "0", "final": "0-3, 7"},
})
FULL["process"]["capabilities"]["inheritable"] = []
FULL["process"]["rlimits"].append({"type": "RLIMIT_CORE", "hard": 18446744073709551615, "soft": 0})
FULL["hooks"] = {k: [{"path": "/usr/bin/hook", "args": ["hook", k], "env": ["A=b"], "timeout": 5}]
                 for k in ("prestart", "createRuntime", "createContainer", "startContainer", "poststart", "poststop")}
FULL["linux"].update({
    "namespaces": [{"type": t} for t in ("pid", "ipc", "uts", "mount", "user", "cgroup", "time")]
                  + [{"type": "network", "path": "/var/run/netns/x"}],
    "uidMappings": [{"containerID": 0, "hostID": 100000, "size": 65536}],
    "gidMappings": [{"containerID": 0, "hostID": 100000, "size": 65536}],
    "timeOffsets": {"boottime": {"secs": -3600, "nanosecs": 0}, "monotonic": {"secs": 10, "nanosecs": 999999999}},
    "devices": [{"path": "/dev/fuse", "type": "c", "major": 10, "minor": 229, "fileMode": 438, "uid": 0, "gid": 0},
                {"path": "/dev/loop0", "type": "b", "major": 7, "minor": 0}],
    "netDevices": {"eth1": {"name": "eth0"}},
    "cgroupsPath": "/pyrunc/test",
    "resources": {
        "devices": [{"allow": False, "access": "rwm"},
                    {"allow": True, "type": "c", "major": 10, "minor": 229, "access": "rw"},
                    {"allow": True, "type": "a", "major": -1, "minor": -1, "access": "m"}],
        "memory": {"limit": 536870912, "reservation": 268435456, "swap": -1, "kernel": -1, "kernelTCP": -1,
                   "swappiness": 0, "disableOOMKiller": False, "useHierarchy": True, "checkBeforeUpdate": True},
        "cpu": {"shares": 1024, "quota": -1, "burst": 0, "period": 100000, "realtimeRuntime": 0,
                "realtimePeriod": 0, "cpus": "0-3", "mems": "0", "idle": 0},
        "blockIO": {"weight": 500, "leafWeight": 300,
                    "weightDevice": [{"major": 8, "minor": 0, "weight": 500, "leafWeight": 300}],
                    "throttleReadBpsDevice": [{"major": 8, "minor": 0, "rate": 104857600}],
                    "throttleWriteBpsDevice": [{"major": 8, "minor": 0, "rate": 104857600}],
                    "throttleReadIOPSDevice": [{"major": 8, "minor": 0, "rate": 1000}],
                    "throttleWriteIOPSDevice": [{"major": 8, "minor": 0, "rate": 1000}]},
        "hugepageLimits": [{"pageSize": "2MB", "limit": 209715200}, {"pageSize": "1GB", "limit": 0}],
        "network": {"classID": 1048577, "priorities": [{"name": "eth0", "priority": 500}]},
        "pids": {"limit": 32768},
        "rdma": {"mlx5_1": {"hcaHandles": 3, "hcaObjects": 10000}},
        "unified": {"io.weight": "default 100", "memory.high": "max"},
    },
    "intelRdt": {"closID": "guaranteed_group", "l3CacheSchema": "L3:0=7f0;1=1f", "memBwSchema": "MB:0=20;1=70",
                 "enableCMT": True, "enableMBM": True},
    "sysctl": {"net.ipv4.ip_forward": "1", "net.core.somaxconn": "256"},
    "seccomp": {
        "defaultAction": "SCMP_ACT_ERRNO", "defaultErrnoRet": 1,
        "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"],
        "flags": ["SECCOMP_FILTER_FLAG_LOG", "SECCOMP_FILTER_FLAG_SPEC_ALLOW"],
        "listenerPath": "/run/seccomp-agent.sock", "listenerMetadata": "x",
        "syscalls": [
            {"names": ["read", "write"], "action": "SCMP_ACT_ALLOW"},
            {"names": ["personality"], "action": "SCMP_ACT_ALLOW",
             "args": [{"index": 0, "value": 0, "op": "SCMP_CMP_EQ"},
                      {"index": 0, "value": 4294967295, "valueTwo": 8, "op": "SCMP_CMP_MASKED_EQ"}]},
            {"names": ["mkdir"], "action": "SCMP_ACT_ERRNO", "errnoRet": 38},
            {"names": ["clone3"], "action": "SCMP_ACT_NOTIFY"},
        ]},
    "rootfsPropagation": "rslave",
    "mountLabel": "system_u:object_r:container_file_t:s0:c1,c2",
    "personality": {"domain": "LINUX32", "flags": []},
    "memoryPolicy": {"mode": "MPOL_BIND", "nodes": "0-1", "flags": ["MPOL_F_STATIC_NODES"]},
})
FULL["vm"] = {"hypervisor": {"path": "/usr/bin/qemu"}}
FULL["x-vendor.extension"] = {"anything": [1, 2, 3]}

# The smallest documents the schema accepts.
MINIMAL = {"ociVersion": "1.0.0"}
MINIMAL_PROCESS = {"ociVersion": "1.0.0", "process": {"cwd": "/"}, "root": {"path": "/"}}

GOOD_CONFIGS = {"runc-default": RUNC_DEFAULT, "full": FULL, "minimal": MINIMAL, "minimal-process": MINIMAL_PROCESS}

RUNC_STATE = {"ociVersion": "1.0.2-dev", "id": "c1", "pid": 4242, "status": "running", "bundle": "/srv/bundle",
              "rootfs": "/srv/bundle/rootfs", "created": "2026-01-02T03:04:05.123456789Z", "owner": ""}
GOOD_STATES = {
    "runc": RUNC_STATE,
    "paused-annotated": dict(RUNC_STATE, status="paused", annotations={"a.b": "c"}),
    "stopped": dict(RUNC_STATE, status="stopped", pid=0),
    "spec-minimal": {"ociVersion": "1.2.0", "id": "x", "status": "creating", "bundle": "/b"},
}


def mutate(doc, path, value=None, delete=False):
    """A deep copy of doc with the node at path replaced (or deleted)."""
    doc = copy.deepcopy(doc)
    node = doc
    for p in path[:-1]:
        node = node[p]
    if delete:
        del node[path[-1]]
    else:
        node[path[-1]] = value
    return doc


D = RUNC_DEFAULT
NS = ('"cgroup", "ipc", "mount", "network", "pid", "time", "user", "uts"')
BAD_CONFIGS = [
    ([], 'config.json: expected an object, got []'),
    ("x", 'config.json: expected an object, got "x"'),
    ({}, "ociVersion: required property missing"),
    (mutate(D, ["ociVersion"], 1), "ociVersion: expected a string, got 1"),
    (mutate(D, ["process", "args"], "sh"), 'process.args: expected an array of strings, got "sh"'),
    (mutate(D, ["process", "args", 0], 5), "process.args.0: expected a string, got 5"),
    (mutate(D, ["process", "cwd"], delete=True), "process.cwd: required property missing"),
    (mutate(D, ["process", "cwd"], "tmp"), 'process.cwd: expected a string matching ^/, got "tmp"'),
    (mutate(D, ["process", "terminal"], "yes"), 'process.terminal: expected a boolean, got "yes"'),
    (mutate(D, ["process", "user", "uid"], -1),
     "process.user.uid: expected an integer between 0 and 4294967295, got -1"),
    (mutate(D, ["process", "user", "gid"], 4294967296),
     "process.user.gid: expected an integer between 0 and 4294967295, got 4294967296"),
    (mutate(D, ["process", "user", "uid"], 1.0),
     "process.user.uid: expected an integer between 0 and 4294967295, got 1.0"),
    (mutate(D, ["process", "user", "uid"], True),
     "process.user.uid: expected an integer between 0 and 4294967295, got true"),
    (mutate(D, ["process", "rlimits", 0, "type"], "NOFILE"),
     'process.rlimits.0.type: expected a string matching ^RLIMIT_[A-Z]+$, got "NOFILE"'),
    (mutate(D, ["process", "rlimits", 0, "soft"], delete=True), "process.rlimits.0.soft: required property missing"),
    (mutate(D, ["process", "rlimits", 0, "hard"], 2 ** 64),
     "process.rlimits.0.hard: expected an integer between 0 and 18446744073709551615, got 18446744073709551616"),
    (mutate(D, ["process", "capabilities", "bounding"], "CAP_KILL"),
     'process.capabilities.bounding: expected an array of strings, got "CAP_KILL"'),
    (mutate(D, ["process", "env"], {"A": "b"}), 'process.env: expected an array of strings, got {"A": "b"}'),
    (mutate(D, ["process", "scheduler"], {"nice": 1}), "process.scheduler.policy: required property missing"),
    (mutate(D, ["process", "ioPriority"], {"class": "IOPRIO_CLASS_NONE"}),
     'process.ioPriority.class: expected one of "IOPRIO_CLASS_RT", "IOPRIO_CLASS_BE", "IOPRIO_CLASS_IDLE", '
     'got "IOPRIO_CLASS_NONE"'),
    (mutate(D, ["process", "execCPUAffinity"], {"initial": "a"}),
     'process.execCPUAffinity.initial: expected a string matching ^[0-9, -]*$, got "a"'),
    (mutate(D, ["process"], "sh"), 'process: expected an object, got "sh"'),
    (mutate(D, ["root", "path"], delete=True), "root.path: required property missing"),
    (mutate(D, ["mounts", 2, "destination"], delete=True), "mounts.2.destination: required property missing"),
    (mutate(D, ["mounts", 2, "options"], "nosuid,noexec"),
     'mounts.2.options: expected an array of strings, got "nosuid,noexec"'),
    (mutate(D, ["mounts"], {"/proc": {}}), 'mounts: expected an array of objects, got {"/proc": {}}'),
    (mutate(D, ["hooks"], {"prestart": [{"args": ["x"]}]}), "hooks.prestart.0.path: required property missing"),
    (mutate(D, ["hooks"], {"poststop": [{"path": "/bin/true", "timeout": 0}]}),
     "hooks.poststop.0.timeout: expected an integer between 1 and 9223372036854775807, got 0"),
    (mutate(D, ["hooks"], {"createRuntime": [{"path": "true"}]}),
     'hooks.createRuntime.0.path: expected a string matching ^/, got "true"'),
    (mutate(D, ["annotations"], {"io.k8s.x": 1}), 'annotations["io.k8s.x"]: expected a string, got 1'),
    (mutate(D, ["hostname"], ["a"]), 'hostname: expected a string, got ["a"]'),
    (mutate(D, ["linux", "namespaces", 0, "type"], "pidd"),
     f'linux.namespaces.0.type: expected one of {NS}, got "pidd"'),
    (mutate(D, ["linux", "namespaces", 1], {"path": "/proc/1/ns/net"}),
     "linux.namespaces.1.type: required property missing"),
    (mutate(D, ["linux", "resources", "devices", 0, "allow"], delete=True),
     "linux.resources.devices.0.allow: required property missing"),
    (mutate(D, ["linux", "resources", "pids"], {}), "linux.resources.pids.limit: required property missing"),
    (mutate(D, ["linux", "resources", "memory"], {"limit": "1g"}),
     'linux.resources.memory.limit: expected an integer between -9223372036854775808 and 9223372036854775807, '
     'got "1g"'),
    (mutate(D, ["linux", "resources", "blockIO"], {"weightDevice": [{"major": 8, "weight": 10}]}),
     "linux.resources.blockIO.weightDevice.0.minor: required property missing"),
    (mutate(D, ["linux", "resources", "blockIO"], {"weight": 65536}),
     "linux.resources.blockIO.weight: expected an integer between 0 and 65535, got 65536"),
    (mutate(D, ["linux", "resources", "hugepageLimits"], [{"pageSize": "2mb", "limit": 1}]),
     'linux.resources.hugepageLimits.0.pageSize: expected a string matching ^[1-9][0-9]*[KMG]B$, got "2mb"'),
    (mutate(D, ["linux", "resources", "unified"], {"memory.max": 100}),
     'linux.resources.unified["memory.max"]: expected a string, got 100'),
    (mutate(D, ["linux", "resources", "rdma"], {"mlx": {"hcaHandles": -3}}),
     "linux.resources.rdma.mlx.hcaHandles: expected an integer between 0 and 4294967295, got -3"),
    (mutate(D, ["linux", "uidMappings"], [{"containerID": 0, "hostID": 1000}]),
     "linux.uidMappings.0.size: required property missing"),
    (mutate(D, ["linux", "devices"], [{"path": "/dev/x", "type": "x"}]),
     'linux.devices.0.type: expected a string matching ^[cbup]$, got "x"'),
    (mutate(D, ["linux", "devices"], [{"path": "/dev/x", "type": "c", "fileMode": 65535}]),
     "linux.devices.0.fileMode: expected an integer between 0 and 4095, got 65535"),
    (mutate(D, ["linux", "seccomp"], {"syscalls": []}), "linux.seccomp.defaultAction: required property missing"),
    (mutate(D, ["linux", "seccomp"], {"defaultAction": "SCMP_ACT_DENY"}),
     'linux.seccomp.defaultAction: expected one of "SCMP_ACT_KILL", "SCMP_ACT_KILL_PROCESS", "SCMP_ACT_KILL_THREAD", '
     '"SCMP_ACT_TRAP", "SCMP_ACT_ERRNO", "SCMP_ACT_TRACE", "SCMP_ACT_ALLOW", "SCMP_ACT_LOG", "SCMP_ACT_NOTIFY", '
     'got "SCMP_ACT_DENY"'),
    (mutate(D, ["linux", "seccomp"], {"defaultAction": "SCMP_ACT_ALLOW", "architectures": ["x86_64"]}),
     'linux.seccomp.architectures.0: expected one of "SCMP_ARCH_X86", "SCMP_ARCH_X86_64", "SCMP_ARCH_X32", '
     '"SCMP_ARCH_ARM", "SCMP_ARCH_AARCH64", "SCMP_ARCH_LOONGARCH64", "SCMP_ARCH_M68K", "SCMP_ARCH_MIPS", '
     '"SCMP_ARCH_MIPS64", "SCMP_ARCH_MIPS64N32", "SCMP_ARCH_MIPSEL", "SCMP_ARCH_MIPSEL64", "SCMP_ARCH_MIPSEL64N32", '
     '"SCMP_ARCH_PPC", "SCMP_ARCH_PPC64", "SCMP_ARCH_PPC64LE", "SCMP_ARCH_S390", "SCMP_ARCH_S390X", "SCMP_ARCH_SH", '
     '"SCMP_ARCH_SHEB", "SCMP_ARCH_PARISC", "SCMP_ARCH_PARISC64", "SCMP_ARCH_RISCV64", got "x86_64"'),
    (mutate(D, ["linux", "seccomp"], {"defaultAction": "SCMP_ACT_ALLOW", "flags": ["TSYNC"]}),
     'linux.seccomp.flags.0: expected one of "SECCOMP_FILTER_FLAG_TSYNC", "SECCOMP_FILTER_FLAG_LOG", '
     '"SECCOMP_FILTER_FLAG_SPEC_ALLOW", "SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV", got "TSYNC"'),
    (mutate(D, ["linux", "seccomp"], {"defaultAction": "SCMP_ACT_ALLOW",
                                      "syscalls": [{"names": [], "action": "SCMP_ACT_ERRNO"}]}),
     "linux.seccomp.syscalls.0.names: expected a non-empty array of strings, got []"),
    (mutate(D, ["linux", "seccomp"], {"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["kill"]}]}),
     "linux.seccomp.syscalls.0.action: required property missing"),
    (mutate(D, ["linux", "seccomp"], {"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
        {"names": ["kill"], "action": "SCMP_ACT_ALLOW", "args": [{"index": 0, "value": 1, "op": "=="}]}]}),
     'linux.seccomp.syscalls.0.args.0.op: expected one of "SCMP_CMP_NE", "SCMP_CMP_LT", "SCMP_CMP_LE", "SCMP_CMP_EQ", '
     '"SCMP_CMP_GE", "SCMP_CMP_GT", "SCMP_CMP_MASKED_EQ", got "=="'),
    (mutate(D, ["linux", "seccomp"], {"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
        {"names": ["kill"], "action": "SCMP_ACT_ALLOW", "args": [{"index": 0, "op": "SCMP_CMP_EQ"}]}]}),
     "linux.seccomp.syscalls.0.args.0.value: required property missing"),
    (mutate(D, ["linux", "seccomp"], {"defaultAction": "SCMP_ACT_ERRNO", "defaultErrnoRet": -1}),
     "linux.seccomp.defaultErrnoRet: expected an integer between 0 and 4294967295, got -1"),
    (mutate(D, ["linux", "rootfsPropagation"], "recursive"),
     'linux.rootfsPropagation: expected one of "private", "shared", "slave", "unbindable", "rprivate", "rshared", '
     '"rslave", "runbindable", "", got "recursive"'),
    (mutate(D, ["linux", "maskedPaths"], "/proc/kcore"),
     'linux.maskedPaths: expected an array of strings, got "/proc/kcore"'),
    (mutate(D, ["linux", "timeOffsets"], {"monotonic": {"nanosecs": -1}}),
     "linux.timeOffsets.monotonic.nanosecs: expected an integer between 0 and 4294967295, got -1"),
    (mutate(D, ["linux", "intelRdt"], {"memBwSchema": "L3:0=1"}),
     'linux.intelRdt.memBwSchema: expected a string matching ^MB:[^\\n]*$, got "L3:0=1"'),
    (mutate(D, ["linux", "personality"], {"domain": "LINUX64"}),
     'linux.personality.domain: expected one of "LINUX", "LINUX32", got "LINUX64"'),
    (mutate(D, ["linux", "sysctl"], {"net.ipv4.ip_forward": 1}),
     'linux.sysctl["net.ipv4.ip_forward"]: expected a string, got 1'),
    (mutate(D, ["linux"], []), "linux: expected an object, got []"),
    (mutate(D, ["windows"], "c:"), 'windows: expected an object, got "c:"'),
    # The first problem in document order wins: process comes before root in RUNC_DEFAULT.
    (mutate(mutate(D, ["root"], 1), ["process", "cwd"], 1), "process.cwd: expected a string matching ^/, got 1"),
    # Long values are cut.
    (mutate(D, ["process", "args"], "x" * 100), 'process.args: expected an array of strings, got "' + "x" * 56 + "..."),
]


def _flatten(schema):
    """Every keyword (dict key that is a schema keyword) used anywhere in a schema."""
    out = set()

    def walk(s, keys_are_names=False):
        if isinstance(s, dict):
            for k, v in s.items():
                if not keys_are_names:
                    out.add(k)
                walk(v, keys_are_names=(not keys_are_names and k in ("properties", "$defs", "patternProperties")))
        elif isinstance(s, list):
            for v in s:
                walk(v)

    walk(schema)
    return out


def test_schemas_are_valid_draft_2020_12():
    from jsonschema import Draft202012Validator
    for name in (CONFIG_SCHEMA, STATE_SCHEMA):
        schema = load_schema(name)
        Draft202012Validator.check_schema(schema)
        assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
        assert isinstance(schema["$comment"], str) and "additional" in schema["$comment"].lower()


def test_schemas_use_only_keywords_fastcheck_knows():
    for name in (CONFIG_SCHEMA, STATE_SCHEMA):
        used = _flatten(load_schema(name)) - {"enum"}  # enum values are lists, never walked as keys
        assert used <= fastcheck.KEYWORDS, used - fastcheck.KEYWORDS


def test_schema_files_found_through_package():
    assert os.path.isfile(os.path.join(os.path.dirname(pyrunc.__file__), "schemas", CONFIG_SCHEMA))
    assert os.path.isfile(os.path.join(REPO, "schemas", STATE_SCHEMA))


@pytest.mark.parametrize("name", sorted(GOOD_CONFIGS))
def test_good_configs_pass_both_engines(name):
    cfg = GOOD_CONFIGS[name]
    assert fastcheck.is_valid(load_schema(CONFIG_SCHEMA), cfg) is True
    assert jsonschema_validator(CONFIG_SCHEMA).is_valid(cfg)
    validate_config(cfg)


@pytest.mark.parametrize("flags", [[], ["--rootless"]])
def test_runc_spec_output_is_valid(tmp_path, flags):
    runc = shutil.which("runc")
    require(runc, "runc is not installed: the embedded copy of its default config is still tested")
    subprocess.run([runc, "spec", *flags], cwd=tmp_path, check=True)
    cfg = json.loads((tmp_path / "config.json").read_text())
    assert fastcheck.is_valid(load_schema(CONFIG_SCHEMA), cfg) is True
    assert jsonschema_validator(CONFIG_SCHEMA).is_valid(cfg)
    validate_config(cfg)


@pytest.mark.parametrize("doc,message", BAD_CONFIGS, ids=[m.split(":")[0] for _d, m in BAD_CONFIGS])
def test_bad_configs_say_what_and_where(doc, message):
    assert fastcheck.is_valid(load_schema(CONFIG_SCHEMA), doc) is False
    assert not jsonschema_validator(CONFIG_SCHEMA).is_valid(doc)
    with pytest.raises(ConfigError) as ei:
        validate_config(doc)
    assert str(ei.value) == message


def test_messages_are_lowercase_at_the_start():
    for doc, message in BAD_CONFIGS:
        text = message.split(": ", 1)[1]
        assert text[0].islower(), message


@pytest.mark.parametrize("name", sorted(GOOD_STATES))
def test_good_states(name):
    validate_state(GOOD_STATES[name])
    assert jsonschema_validator(STATE_SCHEMA).is_valid(GOOD_STATES[name])


@pytest.mark.parametrize("doc,message", [
    ([], "state: expected an object, got []"),
    (mutate(RUNC_STATE, ["status"], "exited"),
     'status: expected one of "creating", "created", "running", "stopped", "paused", got "exited"'),
    (mutate(RUNC_STATE, ["id"], delete=True), "id: required property missing"),
    (mutate(RUNC_STATE, ["bundle"], delete=True), "bundle: required property missing"),
    (mutate(RUNC_STATE, ["pid"], -1), "pid: expected an integer between 0 and 2147483647, got -1"),
    (mutate(RUNC_STATE, ["pid"], "42"), 'pid: expected an integer between 0 and 2147483647, got "42"'),
    (mutate(RUNC_STATE, ["bundle"], "bundle"), 'bundle: expected a string matching ^/, got "bundle"'),
    (mutate(RUNC_STATE, ["created"], "yesterday"),
     'created: expected a string matching ^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(\\.[0-9]+)?'
     '(Z|[+-][0-9]{2}:[0-9]{2})$, got "yesterday"'),
    (mutate(RUNC_STATE, ["annotations"], {"a": None}), "annotations.a: expected a string, got null"),
])
def test_bad_states(doc, message):
    with pytest.raises(ConfigError) as ei:
        validate_state(doc)
    assert str(ei.value) == message


def test_process_and_resources_documents():
    validate_process(RUNC_DEFAULT["process"])
    validate_process(FULL["process"])
    validate_resources(FULL["linux"]["resources"])
    with pytest.raises(ConfigError, match=r'^process\.json: expected an object, got "sh"$'):
        validate_process("sh")
    with pytest.raises(ConfigError, match=r"^cwd: required property missing$"):
        validate_process({"args": ["sh"]})
    with pytest.raises(ConfigError, match=r"^pids\.limit: required property missing$"):
        validate_resources({"pids": {}})


def _python(code):
    """Run code in a fresh interpreter from the repository root; return its stdout."""
    env = dict(os.environ, PYTHONPATH=REPO + os.pathsep + os.environ.get("PYTHONPATH", ""))
    res = subprocess.run([sys.executable, "-c", code], cwd=REPO, env=env, capture_output=True, text=True, timeout=60)
    assert res.returncode == 0, res.stderr
    return res.stdout.strip()


def test_import_does_not_load_jsonschema():
    out = _python("import sys, pyrunc.spec.validate, pyrunc.spec.fastcheck; print('jsonschema' in sys.modules)")
    assert out == "False"


def test_valid_config_does_not_load_jsonschema_but_invalid_does():
    code = ("import sys, json\n"
            "from pyrunc.spec.validate import validate_config\n"
            "from pyrunc.errors import ConfigError\n"
            f"cfg = json.loads({json.dumps(json.dumps(FULL))})\n"
            "validate_config(cfg)\n"
            "print('jsonschema' in sys.modules, 'pyrunc.spec.explain' in sys.modules)\n"
            "cfg['process']['args'] = 'sh'\n"
            "try:\n"
            "    validate_config(cfg)\n"
            "except ConfigError as e:\n"
            "    print(e)\n"
            "print('jsonschema' in sys.modules, 'pyrunc.spec.explain' in sys.modules)\n")
    # the error path (jsonschema and the wording of its errors) is a module of its own, never loaded for a good
    # config: every create reads validate.py
    assert _python(code).splitlines() == ["False False", 'process.args: expected an array of strings, got "sh"',
                                          "True True"]
