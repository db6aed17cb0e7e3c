"""Process security settings as pure data for pyrunc-init (csrc/pyrunc_init.c), which applies them.

caps      process.capabilities -> five capability masks (bnd= eff= prm= inh= amb=) and warnings
rlimits   process.rlimits -> [(resource, soft, hard)] for prlimit(2)
seccomp   linux.seccomp -> Program (cBPF bytes for seccomp=FD, seccomp(2) flags for sflags=)
enosys    runc's -ENOSYS stub prepended to the seccomp program

Nothing here touches the kernel beyond reading /proc/sys/kernel/cap_last_cap; seccomp loads libseccomp
(pyrunc._seccomp) only inside compile().
"""
