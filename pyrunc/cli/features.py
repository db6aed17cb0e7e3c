"""pyrunc features: what this pyrunc implements, as runc's `features` JSON (4-space indent, trailing newline).

Callers switch features on from this document (containerd allows mount id-mappings only with
linux.mountExtensions.idmap.enabled; CRI uses recursive read-only mounts only when mountOptions has "rro"; docker
runs it for every configured runtime at start), so every list is read from the tables the code that implements
the feature uses, never written out by hand.  Key names and order are runc's (types/features in runc 1.2, which
adds cgroup.rdma, intelRdt and mountExtensions to the 1.1 shape).

Cheap on purpose: no jsonschema, click, pyroute2 or compiled helper (tests/unit/test_features.py checks
sys.modules).  The seccomp flags a kernel supports are judged from its version instead of probing seccomp(2)
through ctypes; an old kernel with a backport is under-reported, which only keeps a caller from using a flag.
"""

import json
import os

HOOKS = ("prestart", "createRuntime", "createContainer", "startContainer", "poststart", "poststop")

# the kernel release that added each seccomp(2) filter flag pyrunc accepts (include/uapi/linux/seccomp.h history)
_SECCOMP_FLAG_SINCE = {
    "SECCOMP_FILTER_FLAG_TSYNC": (3, 17),
    "SECCOMP_FILTER_FLAG_LOG": (4, 14),
    "SECCOMP_FILTER_FLAG_SPEC_ALLOW": (4, 17),
    "SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV": (5, 19),
}

_LIBDIRS = ("/usr/lib/x86_64-linux-gnu", "/usr/lib/aarch64-linux-gnu", "/usr/lib64", "/usr/lib", "/lib64", "/lib")


def _kernel(release=None):
    """(major, minor) of the running kernel, (0, 0) if it cannot be read."""
    release = release or os.uname().release
    try:
        major, minor = release.split(".")[:2]
        return int(major), int("".join(c for c in minor if c.isdigit()) or 0)
    except ValueError:
        return (0, 0)


def supported_seccomp_flags(known, release=None):
    k = _kernel(release)
    return [f for f in known if k >= _SECCOMP_FLAG_SINCE.get(f, (99, 0))]


def _libseccomp_version():
    """The version of the libseccomp.so.2 the seccomp compiler links, from its file name; None if not found."""
    for d in _LIBDIRS:
        name = os.path.basename(os.path.realpath(os.path.join(d, "libseccomp.so.2")))
        if name.startswith("libseccomp.so.2.") and os.path.exists(os.path.join(d, name)):
            return name[len("libseccomp.so."):]
    return None


def features(release=None):
    """The features document as a dict, keys in runc's order."""
    from .. import OCI_VERSION, __version__
    from ..linux import NAMESPACES
    from ..process.rootfs import _FLAGS, _MOUNT_ATTR, IDMAP_OPTIONS, PROPAGATION
    from ..security.caps import CAPABILITIES
    from ..security.seccomp import ACTIONS, ARCHES, FLAGS, OPERATORS

    known_flags = list(FLAGS)
    annotations = {"io.github.pyrunc.checkpoint.enabled": "false", "io.github.pyrunc.version": __version__}
    libseccomp = _libseccomp_version()
    if libseccomp:
        annotations["io.github.seccomp.libseccomp.version"] = libseccomp
    return {
        "ociVersionMin": "1.0.0",
        "ociVersionMax": OCI_VERSION,
        "hooks": list(HOOKS),
        # tmpcopyup is refused (process/plan.py, not implemented), so it is not advertised
        "mountOptions": sorted(set(_FLAGS) | set(PROPAGATION) | set(_MOUNT_ATTR) | set(IDMAP_OPTIONS)),
        "linux": {
            "namespaces": sorted(NAMESPACES),
            "capabilities": sorted(CAPABILITIES, key=CAPABILITIES.get),
            "cgroup": {"v1": True, "v2": True, "systemd": False, "systemdUser": False, "rdma": True},
            "seccomp": {
                "enabled": True,
                "actions": sorted(ACTIONS),
                "operators": sorted(OPERATORS),
                "archs": sorted(ARCHES),
                "knownFlags": known_flags,
                "supportedFlags": supported_seccomp_flags(known_flags, release),
            },
            # apparmorProfile, selinuxLabel, mountLabel and intelRdt are refused on every host (plan.UNAPPLIED_*)
            "apparmor": {"enabled": False},
            "selinux": {"enabled": False},
            "intelRdt": {"enabled": False},
            # id-mapped bind mounts (mount uidMappings/gidMappings, options idmap/ridmap), with or without a user
            # namespace: the trees are made in the parent (tests/integration/test_userns.py, test_idmap.py)
            "mountExtensions": {"idmap": {"enabled": True}},
        },
        "annotations": dict(sorted(annotations.items())),
    }


def run(g, o, log):
    from ..errors import UsageError

    if o.args:
        raise UsageError('"features" requires exactly 0 arguments')  # runc: checkArgs(context, 0, exactArgs)
    os.write(1, (json.dumps(features(), indent=4) + "\n").encode())
