"""linux.netDevices (runtime-spec 1.3, config-linux.md "Network Devices"): host interfaces moved into the
container's network namespace.

plan() validates in the caller, before the first fork: a network namespace is required, names must be valid
interface names, every device must exist on the host and no two may end up with the same name inside.  move()
runs in the parent once stage B is in its network namespace (after sync 3, before the prestart hooks, as runc
1.2+ does it in its parent): it first checks that no name is taken in the container's namespace (a joined one
may have devices), then for each device reads the permanent global-scope addresses (IFA_F_PERMANENT,
RT_SCOPE_UNIVERSE) of every family, moves and renames it in one RTM_NEWLINK (IFLA_NET_NS_FD + IFLA_IFNAME; a `%d`
in the name lets the kernel choose a free one), re-adds the addresses inside and sets it up.

Nothing is ever moved back (the spec forbids it): when the namespace is freed the kernel returns physical devices
to the initial namespace and destroys virtual ones.  If a move fails, the caller kills the container, which does
the same to whatever was already moved.

pyroute2 costs 250-500 ms to import: only move() imports it, so a config without netDevices never pays.
"""

import os
import socket

from ..errors import ConfigError, PyruncError

IFNAMSIZ = 16  # with the terminating NUL
IFA_F_PERMANENT = 0x80
RT_SCOPE_UNIVERSE = 0
WHERE = "linux.netDevices"


def _valid_name(name):
    """runc's devValidName, with the kernel's dev_valid_name limit (at most 15 bytes)."""
    return (isinstance(name, str) and 0 < len(name.encode()) < IFNAMSIZ and name not in (".", "..")
            and not any(c in name for c in "/: ") and not any(c.isspace() for c in name))


def plan(devices, has_netns):
    """[(host name, name inside)] in a stable order, or [] when nothing is asked for."""
    if not devices:
        return []
    if not has_netns:
        raise ConfigError(f"{WHERE}: unable to move network devices without a network namespace")
    out, inside = [], {}
    for host in sorted(devices):
        dev = devices[host] or {}
        name = dev.get("name") or host
        for n in (host, name):
            if not _valid_name(n):
                raise ConfigError(f"{WHERE}.{host}: invalid network device name {n!r}")
        if "%d" not in name:
            if name == "lo":
                raise ConfigError(f"{WHERE}.{host}: a device named {name!r} exists in the container namespace")
            if name in inside:
                raise ConfigError(f"{WHERE}.{host}: name {name!r} is also given to {inside[name]!r}")
            inside[name] = host
        out.append((host, name))
    for host, _ in out:  # the config first, then the host
        try:
            socket.if_nametoindex(host)
        except OSError:
            raise ConfigError(f"{WHERE}.{host}: no network device {host!r} on the host") from None
    return out


def _permanent_global(addrs):
    """(family, address, prefixlen) of the addresses the spec says to keep."""
    keep = []
    for a in addrs:
        flags = a.get_attr("IFA_FLAGS")
        if flags is None:
            flags = a["flags"]
        if flags & IFA_F_PERMANENT and a["scope"] == RT_SCOPE_UNIVERSE:
            keep.append((a["family"], a.get_attr("IFA_ADDRESS") or a.get_attr("IFA_LOCAL"), a["prefixlen"]))
    return keep


def move(devices, pid):
    """Move every (host, name) device into the network namespace of pid (the container's init)."""
    from pyroute2 import IPRoute
    from pyroute2.netlink.exceptions import NetlinkError

    nsfd = os.open(f"/proc/{pid}/ns/net", os.O_RDONLY | os.O_CLOEXEC)
    try:
        with IPRoute() as host, IPRoute(netns=nsfd, flags=0) as inner:
            # a joined namespace may hold a device of that name: refuse before anything moves (the kernel would
            # move the device first and refuse only the rename, leaving it in a namespace we do not own)
            there = {link.get_attr("IFLA_IFNAME") for link in inner.get_links()}
            for name, new in devices:
                if "%d" not in new and new in there:
                    raise PyruncError(f"{WHERE}.{name}: a device named {new!r} exists in the container namespace")
            for name, new in devices:
                try:
                    _move_one(host, inner, nsfd, name, new)
                except NetlinkError as e:
                    raise PyruncError(f"{WHERE}.{name}: move network device {name} into the container "
                                      f"as {new}: {os.strerror(e.code).lower()}") from None
    finally:
        os.close(nsfd)


def _move_one(host, inner, nsfd, name, new):
    found = host.link_lookup(ifname=name)
    if not found:
        raise PyruncError(f"{WHERE}.{name}: no network device {name!r} on the host")
    index = found[0]
    addrs = _permanent_global(host.get_addr(index=index))
    before = {link["index"] for link in inner.get_links()}
    # no "down" first (runc's order): the kernel closes the device as it moves it, and a refused move leaves it
    # on the host exactly as it was
    host.link("set", index=index, net_ns_fd=nsfd, ifname=new)
    # the kernel may give the device a new index (and, for a %d template, a name of its choosing): the one link
    # that was not there before is ours; nothing else runs in this namespace yet
    moved = [link["index"] for link in inner.get_links() if link["index"] not in before]
    if len(moved) != 1:
        raise PyruncError(f"{WHERE}.{name}: moved network device not found in the container namespace")
    for family, address, prefixlen in addrs:
        inner.addr("add", index=moved[0], family=family, address=address, prefixlen=prefixlen)
    inner.link("set", index=moved[0], state="up")
