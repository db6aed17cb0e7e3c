"""The `protobuf` package as an oracle for pyrunc's lean codec (pyrunc/shim/wire.py).

The .proto files are compiled at test time with grpcio-tools into a FileDescriptorSet, loaded into a private
descriptor pool (nothing registered globally, nothing generated on disk but the set), and every codec class is
compared with its descriptor and round-tripped both ways through real protobuf messages. Used by
tests/unit/test_shim_wire.py (containerd/ttrpc messages) and tests/e2e/test_cri.py (the CRI subset).
"""

import os

import pytest

from pyrunc.shim import wire


def compile_protos(proto_dir, tmp_path):
    """Compile every .proto in proto_dir; return {full name: descriptor} of the messages they declare."""
    protoc = pytest.importorskip("grpc_tools.protoc", reason="grpcio-tools is in the test extra")
    descriptor_pb2 = pytest.importorskip("google.protobuf.descriptor_pb2")
    from google.protobuf import descriptor_pool

    files = sorted(f for f in os.listdir(proto_dir) if f.endswith(".proto"))
    out = os.path.join(str(tmp_path), "set.pb")
    include = os.path.join(os.path.dirname(protoc.__file__), "_proto")
    rc = protoc.main(["protoc", "-I" + proto_dir, "-I" + include, "--include_imports",
                      "--descriptor_set_out=" + out] + files)
    assert rc == 0, "protoc failed on %s" % proto_dir
    with open(out, "rb") as f:
        fds = descriptor_pb2.FileDescriptorSet.FromString(f.read())
    pool = descriptor_pool.DescriptorPool()
    ours = set()
    for fd in fds.file:
        pool.Add(fd)
        if fd.name in files:
            ours.add(fd.name)
    found = {}
    for name in ours:
        fdesc = pool.FindFileByName(name)
        stack = list(fdesc.message_types_by_name.values())
        while stack:
            d = stack.pop()
            if not d.GetOptions().map_entry:
                found[d.full_name] = d
            stack.extend(d.nested_types)
    for wk in ("google.protobuf.Any", "google.protobuf.Timestamp", "google.protobuf.Empty"):
        try:
            found[wk] = pool.FindMessageTypeByName(wk)
        except KeyError:
            pass
    return found


def pb_class(desc):
    from google.protobuf import message_factory
    return message_factory.GetMessageClass(desc)


def _kind_of(fd):
    """Our kind for a descriptor field (without the repeated/map wrapper)."""
    from google.protobuf.descriptor import FieldDescriptor as F
    t = fd.type
    if t == F.TYPE_MESSAGE:
        return fd.message_type.full_name
    return {F.TYPE_STRING: wire.STRING, F.TYPE_BYTES: wire.BYTES, F.TYPE_BOOL: wire.BOOL, F.TYPE_UINT32: wire.UINT32,
            F.TYPE_UINT64: wire.UINT64, F.TYPE_INT32: wire.INT32, F.TYPE_INT64: wire.INT64, F.TYPE_ENUM: wire.ENUM,
            F.TYPE_SINT32: wire.SINT32, F.TYPE_SINT64: wire.SINT64}.get(t, "unsupported type %d" % t)


def _our_kind(kind):
    if isinstance(kind, wire.Repeated):
        return ("repeated", _our_kind(kind.kind))
    if isinstance(kind, wire.Map):
        return ("map", _our_kind(kind.key), _our_kind(kind.value))
    return kind.NAME if isinstance(kind, type) else kind


def describe_desc(desc):
    """{number: (name, kind)} of a descriptor, kind in our vocabulary."""
    out = {}
    for fd in desc.fields:
        if fd.message_type is not None and fd.message_type.GetOptions().map_entry:
            k, v = fd.message_type.fields_by_name["key"], fd.message_type.fields_by_name["value"]
            kind = ("map", _kind_of(k), _kind_of(v))
        elif fd.is_repeated if hasattr(fd, "is_repeated") else fd.label == fd.LABEL_REPEATED:
            kind = ("repeated", _kind_of(fd))
        else:
            kind = _kind_of(fd)
        out[fd.number] = (fd.name, kind)
    return out


def describe_ours(cls):
    return {num: (name, _our_kind(kind)) for num, name, kind in cls.FIELDS}


# --- sample values: every field non-default, nested to a fixed depth ----------------------------------------------

_SCALAR_SAMPLES = {
    wire.STRING: ["é-x", ""], wire.BYTES: [b"\x00\xff\x80", b""], wire.BOOL: [True, False],
    wire.UINT32: [4294967295, 0, 1], wire.UINT64: [2 ** 64 - 1, 0, 300], wire.INT32: [-2 ** 31, 0, 2 ** 31 - 1],
    wire.INT64: [wire.GO_ZERO_SECONDS, 0, 2 ** 63 - 1], wire.ENUM: [5, 0, 2], wire.SINT32: [-3, 0, 7],
    wire.SINT64: [-(2 ** 63), 0, 9],
}


def sample(cls, depth=0):
    """An instance of cls with every field set to a non-default value (nested messages filled to depth 3)."""
    kw = {}
    for _num, name, kind in cls.FIELDS:
        kw[name] = _sample_value(kind, name, depth)
    return cls(**kw)


def _sample_value(kind, name, depth):
    if isinstance(kind, wire.Repeated):
        if isinstance(kind.kind, type):
            return [kind.kind(), _sample_value(kind.kind, name, depth)]
        return list(_SCALAR_SAMPLES[kind.kind])  # includes the default value: it must survive in a packed list
    if isinstance(kind, wire.Map):
        keys = _SCALAR_SAMPLES[kind.key]
        if isinstance(kind.value, type):
            return {keys[0]: _sample_value(kind.value, name, depth), keys[1]: kind.value()}
        vals = _SCALAR_SAMPLES[kind.value]
        return {keys[0]: vals[0], keys[1]: vals[1]}
    if isinstance(kind, type):
        return sample(kind, depth + 1) if depth < 3 else kind()
    if kind == wire.STRING:
        return "%s-é" % name
    if kind == wire.BYTES:
        return b"\x00\xff" + name.encode()
    return _SCALAR_SAMPLES[kind][0]


# --- conversion between our objects and protobuf objects ------------------------------------------------------------

def to_pb(obj, desc):
    """Build a protobuf message from one of ours, field by field (independently of our encoder)."""
    m = pb_class(desc)()
    for num, name, kind in obj.FIELDS:
        v = getattr(obj, name)
        fd = desc.fields_by_number[num]
        if isinstance(kind, wire.Map):
            target = getattr(m, name)
            for k, val in v.items():
                if isinstance(kind.value, type):
                    target[k].CopyFrom(to_pb(val, fd.message_type.fields_by_name["value"].message_type))
                else:
                    target[k] = val
        elif isinstance(kind, wire.Repeated):
            if isinstance(kind.kind, type):
                for x in v:
                    getattr(m, name).add().CopyFrom(to_pb(x, fd.message_type))
            else:
                getattr(m, name).extend(v)
        elif isinstance(kind, type):
            if v is not None:
                getattr(m, name).CopyFrom(to_pb(v, fd.message_type))
        else:
            setattr(m, name, v)
    return m


def from_pb(m, cls):
    """Build one of ours from a protobuf message, field by field (independently of our decoder)."""
    kw = {}
    for _num, name, kind in cls.FIELDS:
        v = getattr(m, name)
        if isinstance(kind, wire.Map):
            kw[name] = {k: (from_pb(x, kind.value) if isinstance(kind.value, type) else x) for k, x in v.items()}
        elif isinstance(kind, wire.Repeated):
            kw[name] = [from_pb(x, kind.kind) if isinstance(kind.kind, type) else x for x in v]
        elif isinstance(kind, type):
            kw[name] = from_pb(v, kind) if m.HasField(name) else None
        else:
            kw[name] = v
    return cls(**kw)


def has_map(cls, depth=0):
    for _n, _name, kind in cls.FIELDS:
        if isinstance(kind, wire.Map):
            return True
        inner = kind.kind if isinstance(kind, wire.Repeated) else kind
        if isinstance(inner, type) and depth < 4 and has_map(inner, depth + 1):
            return True
    return False


def check_against_descriptors(registry, descs, prefixes):
    """Every class in registry (whose name starts with one of prefixes) matches its descriptor, and every
    descriptor of ours has a class. Returns the list of problems (empty = all good)."""
    problems = []
    for name, desc in sorted(descs.items()):
        if name not in registry:
            problems.append("%s: declared in the .proto files but missing in the codec" % name)
            continue
        want, got = describe_desc(desc), describe_ours(registry[name])
        if want != got:
            problems.append("%s: .proto %r != codec %r" % (name, want, got))
    for name in sorted(registry):
        if name.startswith(prefixes) and name not in descs:
            problems.append("%s: in the codec but not in the .proto files" % name)
    return problems


def roundtrip(cls, desc, obj):
    """Both directions through protobuf; returns (our bytes, protobuf's bytes)."""
    ours = obj.encode()
    m = pb_class(desc)()
    m.ParseFromString(ours)
    assert from_pb(m, cls) == obj, "protobuf read our %s differently" % cls.NAME
    assert m == to_pb(obj, desc), cls.NAME
    theirs = to_pb(obj, desc).SerializeToString(deterministic=True)
    assert cls.decode(theirs) == obj, "we read protobuf's %s differently" % cls.NAME
    return ours, theirs
