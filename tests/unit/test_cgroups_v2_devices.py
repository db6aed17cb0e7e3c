"""cgroup v2 device filter generation (no root): listings taken from runc's
libcontainer/cgroups/devices/devicefilter_test.go (cilium/ebpf asm listing, comments dropped), the emulator's
rules, and the byte encoding of struct bpf_insn."""

import struct

import pytest

from pyrunc.cgroups.devices import DEFAULT_DEVICE_RULES, Emulator, device_program
from pyrunc.errors import ConfigError

PROLOGUE = """
0: LdXMemW dst: r2 src: r1 off: 0 imm: 0
1: AndImm32 dst: r2 imm: 65535
2: LdXMemW dst: r3 src: r1 off: 0 imm: 0
3: RShImm32 dst: r3 imm: 16
4: LdXMemW dst: r4 src: r1 off: 4 imm: 0
5: LdXMemW dst: r5 src: r1 off: 8 imm: 0
"""


def norm(s):
    lines = (line.strip() for line in s.strip().splitlines())
    return "\n".join(line for line in lines if line and not line.startswith("//"))


def rule(t, major, minor, access, allow):
    return {"type": t, "major": major, "minor": minor, "access": access, "allow": allow}


def test_nil():
    want = PROLOGUE + """
block-0:
// return 0 (reject)
6: MovImm32 dst: r0 imm: 0
7: Exit
"""
    assert norm(device_program([]).text()) == norm(want)


# runc specconv.AllowedDevices at the time of the test (no /dev/net/tun), in runc's order
RUNC_ALLOWED = [
    rule("c", None, None, "m", True), rule("b", None, None, "m", True),
    rule("c", 1, 3, "rwm", True), rule("c", 1, 8, "rwm", True), rule("c", 1, 7, "rwm", True),
    rule("c", 5, 0, "rwm", True), rule("c", 1, 5, "rwm", True), rule("c", 1, 9, "rwm", True),
    rule("c", 136, None, "rwm", True), rule("c", 5, 2, "rwm", True),
]

BUILTIN = PROLOGUE + """
block-0:
// (b, wildcard, wildcard, m, true)
6: JNEImm dst: r2 off: -1 imm: 1 <block-1>
7: MovReg32 dst: r1 src: r3
8: AndImm32 dst: r1 imm: 1
9: JNEReg dst: r1 off: -1 src: r3 <block-1>
10: MovImm32 dst: r0 imm: 1
11: Exit
block-1:
// (c, wildcard, wildcard, m, true)
12: JNEImm dst: r2 off: -1 imm: 2 <block-2>
13: MovReg32 dst: r1 src: r3
14: AndImm32 dst: r1 imm: 1
15: JNEReg dst: r1 off: -1 src: r3 <block-2>
16: MovImm32 dst: r0 imm: 1
17: Exit
block-2:
18: JNEImm dst: r2 off: -1 imm: 2 <block-3>
19: JNEImm dst: r4 off: -1 imm: 1 <block-3>
20: JNEImm dst: r5 off: -1 imm: 3 <block-3>
21: MovImm32 dst: r0 imm: 1
22: Exit
block-3:
23: JNEImm dst: r2 off: -1 imm: 2 <block-4>
24: JNEImm dst: r4 off: -1 imm: 1 <block-4>
25: JNEImm dst: r5 off: -1 imm: 5 <block-4>
26: MovImm32 dst: r0 imm: 1
27: Exit
block-4:
28: JNEImm dst: r2 off: -1 imm: 2 <block-5>
29: JNEImm dst: r4 off: -1 imm: 1 <block-5>
30: JNEImm dst: r5 off: -1 imm: 7 <block-5>
31: MovImm32 dst: r0 imm: 1
32: Exit
block-5:
33: JNEImm dst: r2 off: -1 imm: 2 <block-6>
34: JNEImm dst: r4 off: -1 imm: 1 <block-6>
35: JNEImm dst: r5 off: -1 imm: 8 <block-6>
36: MovImm32 dst: r0 imm: 1
37: Exit
block-6:
38: JNEImm dst: r2 off: -1 imm: 2 <block-7>
39: JNEImm dst: r4 off: -1 imm: 1 <block-7>
40: JNEImm dst: r5 off: -1 imm: 9 <block-7>
41: MovImm32 dst: r0 imm: 1
42: Exit
block-7:
43: JNEImm dst: r2 off: -1 imm: 2 <block-8>
44: JNEImm dst: r4 off: -1 imm: 5 <block-8>
45: JNEImm dst: r5 off: -1 imm: 0 <block-8>
46: MovImm32 dst: r0 imm: 1
47: Exit
block-8:
48: JNEImm dst: r2 off: -1 imm: 2 <block-9>
49: JNEImm dst: r4 off: -1 imm: 5 <block-9>
50: JNEImm dst: r5 off: -1 imm: 2 <block-9>
51: MovImm32 dst: r0 imm: 1
52: Exit
block-9:
// /dev/pts (c, 136, wildcard, rwm, true)
53: JNEImm dst: r2 off: -1 imm: 2 <block-10>
54: JNEImm dst: r4 off: -1 imm: 136 <block-10>
55: MovImm32 dst: r0 imm: 1
56: Exit
block-10:
57: MovImm32 dst: r0 imm: 0
58: Exit
"""


def test_builtin_allow_list():
    assert norm(device_program(RUNC_ALLOWED).text()) == norm(BUILTIN)


def test_pyrunc_defaults_add_tun_block_in_sorted_place():
    # pyrunc's defaults also allow /dev/net/tun (10:200): one more block, between 5:2 and 136:*
    p = device_program([rule("a", None, None, "rwm", False)] + list(DEFAULT_DEVICE_RULES))
    text = p.text()
    assert "JNEImm dst: r4 off: -1 imm: 10 <block-10>" in text
    assert "JNEImm dst: r5 off: -1 imm: 200 <block-10>" in text
    assert text.index("imm: 200") < text.index("imm: 136")
    assert len(p.insns) == 59 + 5


def test_privileged():
    want = PROLOGUE + "block-0:\n6: MovImm32 dst: r0 imm: 1\n7: Exit\n"
    assert norm(device_program([rule("a", -1, -1, "rwm", True)]).text()) == norm(want)


def test_privileged_except_single_device():
    want = PROLOGUE + """
block-0:
6: JNEImm dst: r2 off: -1 imm: 1 <block-1>
7: JNEImm dst: r4 off: -1 imm: 8 <block-1>
8: JNEImm dst: r5 off: -1 imm: 0 <block-1>
9: MovImm32 dst: r0 imm: 0
10: Exit
block-1:
11: MovImm32 dst: r0 imm: 1
12: Exit
"""
    rules = [rule("a", -1, -1, "rwm", True), rule("b", 8, 0, "rwm", False)]
    assert norm(device_program(rules).text()) == norm(want)


def test_weird():
    # 8/1 is allowed (the "a" rule reset the list), 8/2 is not: runc v1.0.0-rc.9 cgroup v1 behaviour
    want = PROLOGUE + """
block-0:
6: JNEImm dst: r2 off: -1 imm: 1 <block-1>
7: JNEImm dst: r4 off: -1 imm: 8 <block-1>
8: JNEImm dst: r5 off: -1 imm: 2 <block-1>
9: MovImm32 dst: r0 imm: 0
10: Exit
block-1:
11: MovImm32 dst: r0 imm: 1
12: Exit
"""
    rules = [rule("b", 8, 1, "rwm", False), rule("a", -1, -1, "rwm", True), rule("b", 8, 2, "rwm", False)]
    assert norm(device_program(rules).text()) == norm(want)


def test_emulator_merges_and_subtracts():
    e = Emulator()
    for r in (rule("c", 1, 3, "r", True), rule("c", 1, 3, "w", True), rule("c", 1, 3, "r", False)):
        e.apply(r)
    assert e.clean_rules() == [(("c", 1, 3), "w")]
    assert not e.default_allow


def test_emulator_refuses_to_punch_holes_in_wildcards():
    e = Emulator()
    e.apply(rule("c", 1, None, "rwm", True))
    with pytest.raises(ConfigError, match="cannot punch a hole"):
        e.apply(rule("c", 1, 3, "r", False))


def test_bad_rules():
    with pytest.raises(ConfigError, match="invalid cgroup device type"):
        device_program([rule("x", 1, 3, "rwm", True)])
    with pytest.raises(ConfigError, match="cannot be empty"):
        device_program([rule("c", 1, 3, "", True)])


def test_byte_encoding_resolves_jumps():
    p = device_program([rule("a", -1, -1, "rwm", True), rule("b", 8, 0, "rwm", False)])
    raw = p.bytes()
    assert len(raw) == 8 * len(p.insns) == 8 * 13
    insns = [struct.unpack_from("<BBhi", raw, 8 * i) for i in range(13)]
    assert insns[0] == (0x61, 0x12, 0, 0)  # ldxw r2, [r1+0]
    assert insns[1] == (0x54, 0x02, 0, 0xFFFF)  # and32 r2, 0xffff
    assert insns[6] == (0x55, 0x02, 4, 1)  # jne r2, 1 -> +4 (block-1 at 11)
    assert insns[7] == (0x55, 0x04, 3, 8)  # jne r4, 8 -> +3
    assert insns[8] == (0x55, 0x05, 2, 0)  # jne r5, 0 -> +2
    assert insns[9] == (0xB4, 0x00, 0, 0)  # mov32 r0, 0
    assert insns[10] == (0x95, 0, 0, 0)  # exit
    assert insns[11] == (0xB4, 0x00, 0, 1)
    # the access check: jne r1, r3 (register form)
    q = device_program([rule("c", None, None, "m", True)])
    qi = [struct.unpack_from("<BBhi", q.bytes(), 8 * i) for i in range(len(q.insns))]
    assert qi[7] == (0xBC, 0x31, 0, 0)  # mov32 r1, r3
    assert qi[8] == (0x54, 0x01, 0, 1)  # and32 r1, BPF_DEVCG_ACC_MKNOD
    assert qi[9] == (0x5D, 0x31, 2, 0)  # jne r1, r3 -> +2
