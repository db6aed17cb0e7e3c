"""The shim's lean protobuf codec (pyrunc/shim/wire.py, api.py) against the `protobuf` package as the oracle,
against pyrunc/shim/proto/*.proto, and against bytes measured from containerd-shim-runc-v2 (SHIM.md §1.6, §2.2)."""

import os
import time

import pytest

from pyrunc.shim import api, wire
from tests import protooracle as oracle
from tests.conftest import REPO
from tests.unit.test_imports import _modules_after

PROTO_DIR = os.path.join(REPO, "pyrunc", "shim", "proto")
OUR_PACKAGES = ("ttrpc.", "google.rpc.", "containerd.", "runtimeoptions.", "io.containerd.cgroups.")


@pytest.fixture(scope="module")
def descs(tmp_path_factory):
    return oracle.compile_protos(PROTO_DIR, tmp_path_factory.mktemp("proto"))


def test_codec_classes_match_the_proto_files(descs):
    problems = oracle.check_against_descriptors(api.REGISTRY, descs, OUR_PACKAGES)
    assert not problems, "\n".join(problems)
    # the contract's list, so that a message dropped from both sides is noticed too
    for name in ("CreateTaskRequest", "StateResponse", "PidsResponse", "UpdateTaskRequest", "ConnectResponse",
                 "ShutdownRequest", "ResizePtyRequest", "CheckpointTaskRequest", "CloseIORequest"):
        assert "containerd.task.v2." + name in descs
    assert {"io.containerd.cgroups.v1.Metrics", "io.containerd.cgroups.v2.Metrics", "google.rpc.Status",
            "ttrpc.Request", "containerd.services.events.ttrpc.v1.ForwardRequest"} <= set(descs)


def test_every_task_method_has_its_types_in_the_proto(descs):
    for method, (req, resp) in api.TASK_METHODS.items():
        assert req.NAME in descs and resp.NAME in descs, method
    assert set(api.TOPICS) == {c for c in api.REGISTRY.values() if c.NAME.startswith("containerd.events.Task")
                               and c is not api.TaskIO}


@pytest.mark.parametrize("name", sorted(n for n in api.REGISTRY))
def test_roundtrip_through_protobuf(descs, name):
    cls, desc = api.REGISTRY[name], descs[name]
    full = oracle.sample(cls)
    ours, theirs = oracle.roundtrip(cls, desc, full)
    if not oracle.has_map(cls):
        assert ours == theirs, "byte-for-byte different from protobuf's encoding"
    # proto3 defaults: an all-default message is 0 bytes both ways
    empty, _ = oracle.roundtrip(cls, desc, cls())
    assert empty == b""


def test_negative_and_extreme_scalars(descs):
    for ts in (wire.Timestamp(seconds=wire.GO_ZERO_SECONDS), wire.Timestamp(seconds=-1, nanos=999999999),
               wire.Timestamp(seconds=2 ** 63 - 1, nanos=1)):
        ours, theirs = oracle.roundtrip(wire.Timestamp, descs["google.protobuf.Timestamp"], ts)
        assert ours == theirs
    # Go's zero time is a 10-byte varint (SHIM.md §3)
    assert wire.Timestamp(seconds=wire.GO_ZERO_SECONDS).encode() == bytes.fromhex("088092b8c398feffffff01")
    st = api.Status(code=-1, message="x")
    ours, theirs = oracle.roundtrip(api.Status, descs["google.rpc.Status"], st)
    assert ours == theirs and len(ours) == 1 + 10 + 3


def test_packed_and_unpacked_repeated_scalars_decode():
    packed = api.V1CPUUsage(per_cpu=[0, 1, 2 ** 64 - 1]).encode()
    assert packed[:1] == b"\x22"  # field 4, wire type 2: packed as proto3 does
    unpacked = b"".join(b"\x20" + wire.uvarint(v) for v in (0, 1, 2 ** 64 - 1))
    assert api.V1CPUUsage.decode(unpacked).per_cpu == [0, 1, 2 ** 64 - 1]
    assert api.V1CPUUsage.decode(packed + unpacked).per_cpu == [0, 1, 2 ** 64 - 1] * 2


def test_unknown_fields_of_every_wire_type_are_skipped():
    body = api.ConnectResponse(shim_pid=7, version="v").encode()
    unknown = (b"\xa0\x06\x96\x01"            # field 100 varint
               + b"\xa1\x06" + b"\x01" * 8      # field 100 fixed64
               + b"\xa2\x06\x02hi"              # field 100 length-delimited
               + b"\xa5\x06" + b"\x02" * 4      # field 100 fixed32
               + b"\xa3\x06\x08\x01\xa4\x06")   # field 100 group {1: 1}
    assert api.ConnectResponse.decode(unknown + body + unknown) == api.ConnectResponse(shim_pid=7, version="v")


def test_embedded_message_fields_merge_like_protobuf(descs):
    a = api.CreateTaskRequest(options=wire.Any(type_url="t")).encode()
    b = api.CreateTaskRequest(options=wire.Any(value=b"v")).encode()
    m = oracle.pb_class(descs[api.CreateTaskRequest.NAME])()
    m.ParseFromString(a + b)
    assert api.CreateTaskRequest.decode(a + b).options == wire.Any(type_url="t", value=b"v")
    assert m.options.type_url == "t" and m.options.value == b"v"


@pytest.mark.parametrize("data", [b"\x0a", b"\x0a\x05ab", b"\x08", b"\x08\xff", b"\x0b", b"\x07", b"\x00\x01",
                                  b"\x08" + b"\xff" * 11, b"\x12\x02\xff\xfe"])
def test_malformed_input_is_a_decode_error(data):
    with pytest.raises(wire.DecodeError):
        api.Request.decode(data)


def test_wrong_wire_type_is_a_decode_error():
    with pytest.raises(wire.DecodeError, match=r"ttrpc.Request.service: wire type 0"):
        api.Request.decode(b"\x08\x01")


def test_bad_values_are_refused_on_encode():
    for msg in (api.StartResponse(pid=-1), api.StartResponse(pid=2 ** 32), api.KillRequest(all=1),
                api.WaitResponse(exit_status=None), api.Request(timeout_nano=2 ** 63), api.Request(payload=3),
                api.Request(service=b"x"), api.Response(status=api.KeyValue()), api.Mount(options=["a", None]),
                api.PidsResponse(processes=[api.Mount()])):
        with pytest.raises(ValueError, match=r"out of range|not a bool|not a str|not bytes|is not a "):
            msg.encode()
    with pytest.raises(TypeError, match="has no field 'pidd'"):
        api.StartResponse(pidd=1)


def test_measured_bytes_from_the_go_shim():
    # Connect's ttrpc Response: no status field, payload = ConnectResponse{shim_pid: 5008} (SHIM.md §2.2)
    resp = api.Response.decode(bytes.fromhex("1203089027"))
    assert resp.status is None and api.ConnectResponse.decode(resp.payload).shim_pid == 5008
    assert api.Response(payload=api.ConnectResponse(shim_pid=5008).encode()).encode() == bytes.fromhex("1203089027")
    # an error Response: status only
    err = bytes.fromhex("0a2408051220") + b"container not created: not found"
    assert api.Response(status=api.Status(code=5, message="container not created: not found")).encode() == err
    assert api.Response.decode(err).status.message == "container not created: not found"
    # the `delete` subcommand's stdout after a SIGKILLed shim: pid 5951, exit 137, then a 12-byte Timestamp
    out = api.DeleteResponse(pid=5951, exit_status=137, exited_at=wire.Timestamp(seconds=1764601234,
                                                                                 nanos=987654321)).encode()
    assert out[:6] == bytes.fromhex("08bf2e108901") and out[6:8] == b"\x1a\x0c"
    # success with an empty message is a 0-byte body
    assert api.Response(payload=wire.Empty().encode()).encode() == b""
    assert api.PidsResponse().encode() == b""


def test_any_pack_has_no_type_prefix():
    a = wire.pack(api.TaskExit(container_id="c", exit_status=7))
    assert a.type_url == "containerd.events.TaskExit"
    assert wire.unpack(a, api.REGISTRY) == api.TaskExit(container_id="c", exit_status=7)
    a.type_url = "type.googleapis.com/containerd.events.TaskExit"  # tolerated on the way in
    assert a.unpack(api.REGISTRY).exit_status == 7
    with pytest.raises(wire.DecodeError, match="unknown Any type 'x.Y'"):
        wire.unpack(wire.Any(type_url="x.Y"), api.REGISTRY)


def test_timestamp_helpers():
    assert wire.Timestamp.from_ns(-1) == wire.Timestamp(seconds=-1, nanos=999999999)
    assert wire.Timestamp.from_ns(1_500_000_000).to_ns() == 1_500_000_000
    before = time.time_ns()
    assert before <= wire.Timestamp.now().to_ns() <= time.time_ns()


def test_codec_does_not_import_protobuf():
    mods, rc, err = _modules_after("import pyrunc.shim.api, pyrunc.shim.wire, pyrunc.shim.ttrpc")
    assert rc == 0, err
    assert "pyrunc.shim.ttrpc" in mods
    bad = sorted(m for m in mods if m.split(".")[0] in ("google", "grpc", "grpc_tools"))
    assert not bad, bad


def test_codec_figures(descs, capsys):
    """Not an assertion on speed (the VM is shared): prints the per-message figures quoted in wire.py."""
    req = api.CreateTaskRequest(
        id="c1", bundle="/run/containerd/io.containerd.runtime.v2.task/default/c1", stdin="/run/fifo/c1-stdin",
        stdout="/run/fifo/c1-stdout", stderr="/run/fifo/c1-stderr",
        rootfs=[api.Mount(type="overlay", source="overlay", options=["index=off", "workdir=/w%d" % i,
                                                                      "upperdir=/u", "lowerdir=/l1:/l2"])
                for i in range(3)],
        options=wire.pack(api.RuntimeOptions(config_path="/etc/pyrunc/shim.toml")))
    data = req.encode()
    pbcls = oracle.pb_class(descs[api.CreateTaskRequest.NAME])

    def per_call(fn, n=2000):
        t = time.perf_counter()
        for _ in range(n):
            fn()
        return (time.perf_counter() - t) / n * 1e6

    pb = pbcls.FromString(data)
    figures = {"ours decode": per_call(lambda: api.CreateTaskRequest.decode(data)),
               "ours encode": per_call(req.encode),
               "protobuf decode": per_call(lambda: pbcls.FromString(data)),
               "protobuf encode": per_call(pb.SerializeToString)}
    assert pb.SerializeToString() == data
    with capsys.disabled():
        print("\nCreateTaskRequest (%d bytes) µs/call: %s" % (
            len(data), ", ".join("%s %.1f" % kv for kv in figures.items())))
