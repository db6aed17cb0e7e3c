"""runc's -ENOSYS stub (libcontainer/seccomp/patchbpf): a cBPF prefix prepended to libseccomp's program.

Why: a profile is written against the syscalls its author knew.  A syscall newer than the profile would get the
default action, typically EPERM, and libc takes EPERM as "forbidden" where it takes ENOSYS as "not here, fall
back" (glibc's clone3 -> clone, faccessat2 -> faccessat, statx -> fstatat).  So for every architecture the
profile lists, a syscall number above the highest one the profile names returns ENOSYS instead.  Like runc 1.1.5:

* only architectures in `architectures` get a section (none listed: no stub at all);
* the highest number is taken over every rule's names, whatever the rule's action, unknown names skipped;
* x86_64 and x32 share AUDIT_ARCH_X86_64 and are told apart by bit 30 of the syscall number;
* on s390/s390x syscall 0 is the multiplexer unknown large numbers end in, so it returns ENOSYS too;
* no stub when the default action is permissive (ALLOW, LOG, TRACE) or is already ERRNO(ENOSYS).

The same caveat as runc's: syscalls added out of order (close_range) or holes in the table are not modelled.
All jumps in the stub land inside the stub (the -ENOSYS return or the first instruction of libseccomp's
program, which follows it), and libseccomp's own jumps are relative, so prepending needs no relocation.
"""

import struct

# classic BPF opcodes, <linux/bpf_common.h>
LD_W_ABS = 0x20  # BPF_LD | BPF_W | BPF_ABS
JA = 0x05  # BPF_JMP | BPF_JA
JEQ = 0x15  # BPF_JMP | BPF_JEQ | BPF_K
JGT = 0x25  # BPF_JMP | BPF_JGT | BPF_K
JSET = 0x45  # BPF_JMP | BPF_JSET | BPF_K
RET = 0x06  # BPF_RET | BPF_K

SECCOMP_RET_ERRNO = 0x00050000
ENOSYS = 38
RET_ENOSYS = SECCOMP_RET_ERRNO | ENOSYS
OFF_NR, OFF_ARCH = 0, 4  # struct seccomp_data
X32_BIT = 0x40000000  # __X32_SYSCALL_BIT

AUDIT_ARCH_X86_64 = 0xC000003E
AUDIT_ARCH_S390 = 0x00000016
AUDIT_ARCH_S390X = 0x80000016
INSN = struct.Struct("=HBBI")  # struct sock_filter, host byte order as seccomp_export_bpf writes it


def stub(last):
    """Return the stub as sock_filter bytes.

    `last` maps a native audit arch to {"native": highest nr} or, for AUDIT_ARCH_X86_64, any of
    {"x86_64": nr, "x32": nr} (x32 numbers carry bit 30, as libseccomp resolves them).  Empty -> b"".
    """
    if not last:
        return b""
    prog = [(LD_W_ABS, 0, 0, OFF_ARCH)]
    for arch in last:
        prog.append((JEQ, ("sec", arch), 0, arch))
    prog.append((JA, 0, 0, "filter"))
    for arch, maxes in last.items():
        prog.append(("label", ("sec", arch)))
        prog.append((LD_W_ABS, 0, 0, OFF_NR))
        if arch in (AUDIT_ARCH_S390, AUDIT_ARCH_S390X):
            prog.append((JEQ, "enosys", 0, 0))
        if arch == AUDIT_ARCH_X86_64:
            if "x86_64" in maxes and "x32" in maxes:
                prog += [(JSET, ("x32", arch), 0, X32_BIT),
                         (JGT, "enosys", 0, maxes["x86_64"]), (JA, 0, 0, "filter"),
                         ("label", ("x32", arch)),
                         (JGT, "enosys", 0, maxes["x32"]), (JA, 0, 0, "filter")]
            elif "x86_64" in maxes:
                prog += [(JSET, "filter", 0, X32_BIT), (JGT, "enosys", 0, maxes["x86_64"]), (JA, 0, 0, "filter")]
            else:
                prog += [(JSET, 0, "filter", X32_BIT), (JGT, "enosys", 0, maxes["x32"]), (JA, 0, 0, "filter")]
        else:
            prog += [(JGT, "enosys", 0, maxes["native"]), (JA, 0, 0, "filter")]
    prog += [("label", "enosys"), (RET, 0, 0, RET_ENOSYS), ("label", "filter")]
    return _assemble(prog)


def _assemble(prog):
    labels, insns = {}, []
    for item in prog:
        if item[0] == "label":
            labels[item[1]] = len(insns)
        else:
            insns.append(item)
    out = bytearray()
    for i, (code, jt, jf, k) in enumerate(insns):
        def rel(target):
            if isinstance(target, int):
                return target
            off = labels[target] - (i + 1)
            if not 0 <= off <= (255 if code != JA else 0xFFFFFFFF):
                raise ValueError(f"seccomp -ENOSYS stub: jump of {off} does not fit")
            return off
        if code == JA:
            out += INSN.pack(code, 0, 0, rel(k))
        else:
            out += INSN.pack(code, rel(jt), rel(jf), k)
    return bytes(out)
