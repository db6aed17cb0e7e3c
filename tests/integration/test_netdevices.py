"""linux.netDevices (runtime-spec 1.3): host interfaces moved into the container's network namespace, for real.

Each test makes its own veth pair (this kernel has no `dummy` module) with a random name, moves one end in and
looks at it from inside with busybox `ip addr`.  Nothing is ever moved back (the spec forbids it): when the
container's network namespace goes away the kernel destroys the veth, and with it its peer on the host.
"""

import re
import subprocess
import time
import uuid

import pytest


def ip(*args, check=True):
    return subprocess.run(["ip", *args], capture_output=True, text=True, timeout=30, check=check)


def link_exists(name):
    return ip("link", "show", "dev", name, check=False).returncode == 0


def wait_gone(name, timeout=20.0):
    """The kernel tears a network namespace down asynchronously (cleanup_net): poll, with a deadline."""
    deadline = time.monotonic() + timeout
    while link_exists(name):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


@pytest.fixture
def veth():
    """A veth pair (host end `a`, peer `b`), `a` with an IPv4 and an IPv6 permanent global address and a
    link-scope one; removed at teardown whatever happened."""
    tag = uuid.uuid4().hex[:6]
    a, b = f"pyrtA{tag}", f"pyrtB{tag}"
    ip("link", "add", a, "type", "veth", "peer", "name", b)
    try:
        ip("addr", "add", "10.231.7.2/24", "dev", a)
        ip("addr", "add", "fd00:231:7::2/64", "dev", a, "nodad")
        ip("addr", "add", "169.254.231.7/16", "dev", a, "scope", "link")
        yield a, b
    finally:
        for n in (a, b):
            if link_exists(n):
                ip("link", "del", n, check=False)


def netdevs(devices):
    def edit(c):
        c["linux"]["netDevices"] = devices
    return edit


def run(pyrunc, b, cid, *extra):
    return pyrunc("run", *extra, "--bundle", b, cid, stdin=subprocess.DEVNULL)


def test_device_is_moved_renamed_addressed_and_up(pyrunc, bundle, veth):
    a, b = veth
    bb = bundle(["busybox", "ip", "addr"], edit=netdevs({a: {"name": "eth7"}}))
    p = run(pyrunc, bb, pyrunc.new_id("netdev"))
    assert p.returncode == 0, p.err
    out = p.out
    m = re.search(r"^\d+: eth7[@:].*$", out, re.M)
    assert m, out
    assert "UP" in m.group(0).split("<")[1].split(">")[0].split(","), m.group(0)
    block = re.split(r"\n\d+: ", out[m.start():])[0]
    assert "inet 10.231.7.2/24" in block, out
    assert "inet6 fd00:231:7::2/64" in block, out
    assert "169.254.231.7" not in out, "a link-scope address must not be carried over"
    assert a not in out
    # the container is gone: its namespace, and with it the moved veth and its peer; nothing came back
    assert wait_gone(b), f"{b} still on the host after the container exited"
    assert not link_exists(a) and not link_exists("eth7")


def test_device_keeps_its_name_and_template(pyrunc, bundle, veth):
    """No name: the host name is kept.  A `%d` template lets the kernel choose a free name."""
    a, b = veth
    tag = uuid.uuid4().hex[:6]
    c, d = f"pyrtC{tag}", f"pyrtD{tag}"
    ip("link", "add", c, "type", "veth", "peer", "name", d)
    try:
        bb = bundle(["busybox", "ip", "-o", "link"], edit=netdevs({a: {}, c: {"name": "net%d"}}))
        p = run(pyrunc, bb, pyrunc.new_id("netdevt"))
        assert p.returncode == 0, p.err
        names = re.findall(r"^\d+: ([^:@]+)", p.out, re.M)
        assert a in names and "net0" in names and c not in names, p.out
        assert wait_gone(b) and wait_gone(d)
    finally:
        for n in (c, d):
            if link_exists(n):
                ip("link", "del", n, check=False)


def test_missing_device_is_refused(pyrunc, bundle, veth):
    a, b = veth
    cid = pyrunc.new_id("netdevmiss")
    bb = bundle(["echo", "ran"], edit=netdevs({a: {"name": "eth0"}, "pyrtNoSuch0": {}}))
    p = run(pyrunc, bb, cid)
    assert p.returncode != 0 and "ran" not in p.out
    assert "pyrtNoSuch0" in p.err, p.err
    # nothing was moved: the existing device is still on the host with its address
    assert link_exists(a) and "10.231.7.2/24" in ip("addr", "show", "dev", a).stdout


@pytest.mark.parametrize("inside", ["lo", "same"])
def test_name_clash_is_refused(pyrunc, bundle, veth, inside):
    """Two devices (or a device and the namespace's own lo) may not end up with the same name."""
    a, b = veth
    if inside == "lo":
        devices = {a: {"name": "lo"}}
        named = a
    else:
        devices = {a: {"name": "eth0"}, b: {"name": "eth0"}}
        named = "eth0"
    p = run(pyrunc, bundle(["echo", "ran"], edit=netdevs(devices)), pyrunc.new_id("netdevclash"))
    assert p.returncode != 0 and "ran" not in p.out
    assert named in p.err and "linux.netDevices" in p.err, p.err
    assert link_exists(a) and link_exists(b)


def test_netdevices_need_a_network_namespace(pyrunc, bundle, veth):
    a, _ = veth

    def edit(c):
        c["linux"]["namespaces"] = [n for n in c["linux"]["namespaces"] if n["type"] != "network"]
        c["linux"]["netDevices"] = {a: {}}

    p = run(pyrunc, bundle(["echo", "ran"], edit=edit), pyrunc.new_id("netdevnons"))
    assert p.returncode != 0 and "ran" not in p.out
    assert "linux.netDevices" in p.err and "network namespace" in p.err, p.err
    assert link_exists(a)


def test_clash_in_a_joined_namespace_leaves_the_device_as_it_was(pyrunc, bundle, veth):
    """The container joins a network namespace that has a device of the asked name already: the kernel refuses
    the move (EEXIST), the error names the device, and the device stays on the host, up, with its addresses."""
    a, b = veth
    ns = f"pyrtns{uuid.uuid4().hex[:6]}"
    ip("netns", "add", ns)
    try:
        ip("link", "set", b, "netns", ns)  # b now lives in ns, under its own name
        ip("link", "set", a, "up")

        def edit(c):
            c["linux"]["namespaces"] = [n for n in c["linux"]["namespaces"] if n["type"] != "network"]
            c["linux"]["namespaces"].append({"type": "network", "path": f"/var/run/netns/{ns}"})
            c["linux"]["netDevices"] = {a: {"name": b}}

        cid = pyrunc.new_id("netdevjoin")
        p = run(pyrunc, bundle(["echo", "ran"], edit=edit), cid)
        assert p.returncode != 0 and "ran" not in p.out
        assert a in p.err and "linux.netDevices" in p.err, p.err
        show = ip("addr", "show", "dev", a).stdout
        assert "10.231.7.2/24" in show and ",UP" in show.split(">")[0], show
    finally:
        ip("netns", "del", ns, check=False)
