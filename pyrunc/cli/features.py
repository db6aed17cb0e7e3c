"""pyrunc features: what this pyrunc implements, as runc's `features` JSON (4-space indent, trailing newline).

Callers switch features on from this document (containerd allows mount id-mappings only with
linux.mountExtensions.idmap.enabled; CRI uses recursive read-only mounts only when mountOptions has "rro"; docker
runs it for every configured runtime at start), so every list is read from the tables the code that implements
the feature uses, never written out by hand.  Key names and order are runc's (types/features in runc 1.2, which
adds cgroup.rdma, intelRdt and mountExtensions to the 1.1 shape).

What depends on the host is asked of the running kernel on every call (pyrunc/linux/probe.py: about 2 ms, so
nothing is cached): the namespaces it has, the seccomp actions and filter flags it implements
(SECCOMP_GET_ACTION_AVAIL, and seccomp(2) with each flag and no program), whether it has mount_setattr(2) (the
recursive r* mount options), NUMA memory policies, a resctrl filesystem (intelRdt) and network namespaces with
pyroute2 installed (netDevices).  Cheap still: no jsonschema, click or pyroute2 (tests/unit/test_features.py
checks sys.modules); the syscall helper is loaded (about 1 ms).
"""

import json
import os

HOOKS = ("prestart", "createRuntime", "createContainer", "startContainer", "poststart", "poststop")

_LIBDIRS = ("/usr/lib/x86_64-linux-gnu", "/usr/lib/aarch64-linux-gnu", "/usr/lib64", "/usr/lib", "/lib64", "/lib")


def _libseccomp_version():
    """The version of the libseccomp.so.2 the seccomp compiler links, from its file name; None if not found."""
    for d in _LIBDIRS:
        name = os.path.basename(os.path.realpath(os.path.join(d, "libseccomp.so.2")))
        if name.startswith("libseccomp.so.2.") and os.path.exists(os.path.join(d, name)):
            return name[len("libseccomp.so."):]
    return None


def _intel_rdt():
    from ..process.intelrdt import find_root

    root = find_root()
    return {"enabled": bool(root), "schemata": bool(root),
            "monitoring": bool(root) and os.path.isdir(os.path.join(root, "info", "L3_MON"))}


def features():
    """The features document as a dict, keys in runc's order."""
    from .. import OCI_VERSION, __version__
    from ..linux import probe
    from ..process.mempolicy import FLAGS as MPOL_FLAGS, MODES as MPOL_MODES
    from ..process.rootfs import _FLAGS, _MOUNT_ATTR, IDMAP_OPTIONS, PROPAGATION
    from ..security.caps import CAPABILITIES
    from ..security.seccomp import ACTIONS, ARCHES, FLAGS, OPERATORS

    known_flags = list(FLAGS)
    annotations = {"io.github.pyrunc.checkpoint.enabled": "false", "io.github.pyrunc.version": __version__}
    libseccomp = _libseccomp_version()
    if libseccomp:
        annotations["io.github.seccomp.libseccomp.version"] = libseccomp
    doc = {
        "ociVersionMin": "1.0.0",
        "ociVersionMax": OCI_VERSION,
        "hooks": list(HOOKS),
        # the recursive r* options are applied with mount_setattr(2) (5.12): only where the kernel has it
        "mountOptions": sorted(set(_FLAGS) | set(PROPAGATION) | set(_MOUNT_ATTR if probe.mount_setattr() else ())
                               | set(IDMAP_OPTIONS) | {"tmpcopyup"}),
        "linux": {
            "namespaces": probe.namespaces(),
            "capabilities": sorted(CAPABILITIES, key=CAPABILITIES.get),
            # systemd: --systemd-cgroup (pyrunc/cgroups/systemd.py); systemdUser: rootless, not implemented
            "cgroup": {"v1": True, "v2": True, "systemd": True, "systemdUser": False, "rdma": True},
            "seccomp": {
                "enabled": True,
                "actions": sorted(probe.seccomp_actions(ACTIONS)),
                "operators": sorted(OPERATORS),
                "archs": sorted(ARCHES),
                "knownFlags": known_flags,
                "supportedFlags": probe.seccomp_flags(known_flags),
            },
            # apparmorProfile, selinuxLabel and mountLabel are refused on every host (plan.UNAPPLIED_*)
            "apparmor": {"enabled": False},
            "selinux": {"enabled": False},
            "intelRdt": _intel_rdt(),  # applied where resctrl is mounted, refused elsewhere (process/intelrdt.py)
            "memoryPolicy": {"modes": sorted(MPOL_MODES), "flags": sorted(MPOL_FLAGS)},  # set_mempolicy(2)
            # id-mapped bind mounts (mount uidMappings/gidMappings, options idmap/ridmap), with or without a user
            # namespace: the trees are made in the parent (tests/integration/test_userns.py, test_idmap.py)
            "mountExtensions": {"idmap": {"enabled": True}},
            "netDevices": {"enabled": probe.net_devices()},  # moved with pyroute2 (process/netdev.py)
        },
        "annotations": dict(sorted(annotations.items())),
    }
    if not probe.numa():  # a kernel without CONFIG_NUMA has no memory policies: the key is left out, as runc would
        del doc["linux"]["memoryPolicy"]
    return doc


def run(g, o, log):
    from ..errors import UsageError

    if o.args:
        raise UsageError('"features" requires exactly 0 arguments')  # runc: checkArgs(context, 0, exactArgs)
    os.write(1, (json.dumps(features(), indent=4) + "\n").encode())
