/* pyrunc_helper.c: leaf system call wrappers (see pyrunc_helper.h).  Each returns >= 0 or -errno. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <sched.h>
#include <signal.h>
#include <stdint.h>
#include <string.h>
#include <unistd.h>
#include <fcntl.h>
#include <net/if.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/prctl.h>
#include <sys/personality.h>
#include <sys/syscall.h>
#include <linux/capability.h>

#ifndef SYS_openat2
#define SYS_openat2 437
#endif
#ifndef SYS_open_tree
#define SYS_open_tree 428
#endif
#ifndef SYS_move_mount
#define SYS_move_mount 429
#endif
#ifndef SYS_mount_setattr
#define SYS_mount_setattr 442
#endif
#ifndef SYS_close_range
#define SYS_close_range 436
#endif

#define RET(x) do { long r_ = (long)(x); return r_ < 0 ? -errno : (int)r_; } while (0)

int pyr_unshare(int flags) { RET(unshare(flags)); }
int pyr_setns(int fd, int nstype) { RET(setns(fd, nstype)); }

int pyr_mount(const char *source, const char *target, const char *fstype, unsigned long flags, const char *data)
{
	RET(mount(source, target, fstype, flags, data));
}

int pyr_umount2(const char *target, int flags) { RET(umount2(target, flags)); }
int pyr_pivot_root(const char *new_root, const char *put_old) { RET(syscall(SYS_pivot_root, new_root, put_old)); }
int pyr_setdomainname(const char *name, size_t len) { RET(setdomainname(name, len)); }

int pyr_prctl(int option, unsigned long a2, unsigned long a3, unsigned long a4, unsigned long a5)
{
	RET(prctl(option, a2, a3, a4, a5));
}

struct pyr_open_how { uint64_t flags, mode, resolve; };

int pyr_openat2(int dirfd, const char *path, uint64_t flags, uint64_t mode, uint64_t resolve)
{
	struct pyr_open_how how = { flags, mode, resolve };
	RET(syscall(SYS_openat2, dirfd, path, &how, sizeof(how)));
}

int pyr_open_tree(int dirfd, const char *path, unsigned int flags) { RET(syscall(SYS_open_tree, dirfd, path, flags)); }

int pyr_move_mount(int from_dirfd, const char *from_path, int to_dirfd, const char *to_path, unsigned int flags)
{
	RET(syscall(SYS_move_mount, from_dirfd, from_path, to_dirfd, to_path, flags));
}

struct pyr_mount_attr { uint64_t attr_set, attr_clr, propagation, userns_fd; };

int pyr_mount_setattr(int dirfd, const char *path, unsigned int flags, uint64_t attr_set, uint64_t attr_clr,
		      uint64_t propagation, uint64_t userns_fd)
{
	struct pyr_mount_attr attr = { attr_set, attr_clr, propagation, userns_fd };
	RET(syscall(SYS_mount_setattr, dirfd, path, flags, &attr, sizeof(attr)));
}

/* out/in: effective, permitted, inheritable, each as two 32-bit words (capability version 3) */
int pyr_capget(uint32_t out[6])
{
	struct __user_cap_header_struct hdr = { _LINUX_CAPABILITY_VERSION_3, 0 };
	struct __user_cap_data_struct data[2];
	memset(data, 0, sizeof(data));
	if (syscall(SYS_capget, &hdr, data) < 0)
		return -errno;
	for (int i = 0; i < 2; i++) {
		out[i] = data[i].effective;
		out[2 + i] = data[i].permitted;
		out[4 + i] = data[i].inheritable;
	}
	return 0;
}

int pyr_capset(const uint32_t in[6])
{
	struct __user_cap_header_struct hdr = { _LINUX_CAPABILITY_VERSION_3, 0 };
	struct __user_cap_data_struct data[2];
	for (int i = 0; i < 2; i++) {
		data[i].effective = in[i];
		data[i].permitted = in[2 + i];
		data[i].inheritable = in[4 + i];
	}
	RET(syscall(SYS_capset, &hdr, data));
}

/* KEYCTL_JOIN_SESSION_KEYRING (1): a fresh session keyring, so containers do not share the caller's */
int pyr_keyctl_join_session_keyring(const char *name) { RET(syscall(SYS_keyctl, 1, name)); }

/* KEYCTL_DESCRIBE (6): "type;uid;gid;perm;description", NUL included; returns its full length */
int pyr_keyctl_describe(int key, char *buf, size_t len) { RET(syscall(SYS_keyctl, 6, key, buf, len)); }

/* KEYCTL_SETPERM (5) */
int pyr_keyctl_setperm(int key, uint32_t perm) { RET(syscall(SYS_keyctl, 5, key, perm)); }

int pyr_personality(unsigned long persona) { RET(personality(persona)); }

int pyr_close_range(unsigned int first, unsigned int last, unsigned int flags)
{
	RET(syscall(SYS_close_range, first, last, flags));
}

/* bpf(2): attr is a caller-packed union bpf_attr of `size` bytes (the kernel writes results back into it) */
int pyr_bpf(int cmd, void *attr, unsigned int size) { RET(syscall(SYS_bpf, cmd, attr, size)); }

/* sched_setattr(2) on the calling thread (pid 0), flags 0 (glibc before 2.41 has no wrapper).  The struct is the
 * kernel's SCHED_ATTR_SIZE_VER1 layout (56 bytes, as runc's unix.SchedAttr): with VER0 (48 bytes) the kernel
 * refuses SCHED_FLAG_UTIL_CLAMP_MIN/MAX with EINVAL.  util_min/util_max are the clamps those flags apply. */
struct pyr_sched_attr {
	uint32_t size, sched_policy;
	uint64_t sched_flags;
	int32_t sched_nice;
	uint32_t sched_priority;
	uint64_t sched_runtime, sched_deadline, sched_period;
	uint32_t sched_util_min, sched_util_max;
};

int pyr_sched_setattr(uint32_t policy, uint64_t flags, int32_t nice, uint32_t priority, uint64_t runtime,
		      uint64_t deadline, uint64_t period, uint32_t util_min, uint32_t util_max)
{
	struct pyr_sched_attr attr = { sizeof(attr), policy, flags, nice, priority, runtime, deadline, period,
				       util_min, util_max };
	_Static_assert(sizeof(attr) == 56, "SCHED_ATTR_SIZE_VER1");
	RET(syscall(SYS_sched_setattr, 0, &attr, 0));
}

/* ioprio_set(2): which is IOPRIO_WHO_PROCESS/PGRP/USER, ioprio is class << 13 | data */
int pyr_ioprio_set(int which, int who, int ioprio) { RET(syscall(SYS_ioprio_set, which, who, ioprio)); }

/* set_mempolicy(2) for the calling thread: mode ORed with its MPOL_F_* flags; nodemask is an array of unsigned
 * long bits, maxnode the kernel's "number of bits + 1" (NULL and 0 for the modes that take no nodes) */
int pyr_set_mempolicy(int mode, const unsigned long *nodemask, unsigned long maxnode)
{
	RET(syscall(SYS_set_mempolicy, mode, nodemask, maxnode));
}

/* seccomp(2) for probing: SECCOMP_SET_MODE_FILTER with a NULL program fails with EFAULT when the kernel knows
 * every flag asked for, EINVAL when not (nothing is ever loaded); SECCOMP_GET_ACTION_AVAIL takes a u32 action */
int pyr_seccomp(unsigned int op, unsigned int flags, void *args) { RET(syscall(SYS_seccomp, op, flags, args)); }

int pyr_sched_setaffinity(int pid, size_t size, const char *mask) { RET(syscall(SYS_sched_setaffinity, pid, size, mask)); }

int pyr_prlimit(int pid, int resource, uint64_t soft, uint64_t hard)
{
	uint64_t lim[2] = { soft, hard };  /* struct rlimit64: rlim_cur, rlim_max */
	RET(syscall(SYS_prlimit64, pid, resource, lim, NULL));
}

/* The init protocol's sync channel (process/init.py), without Python's _socket: the pair, then read/write */
int pyr_socketpair(int domain, int type, int protocol, int sv[2]) { RET(socketpair(domain, type, protocol, sv)); }

int pyr_socket(int domain, int type, int protocol) { RET(socket(domain, type, protocol)); }

/* SIOCGIFFLAGS / SIOCSIFFLAGS on a socket fd (bringing the new network namespace's lo up): the interface's flags
 * (a short, returned as its unsigned value), then the new ones */
int pyr_get_ifflags(int fd, const char *name)
{
	struct ifreq ifr;
	memset(&ifr, 0, sizeof(ifr));
	strncpy(ifr.ifr_name, name, IFNAMSIZ - 1);
	if (ioctl(fd, SIOCGIFFLAGS, &ifr) < 0)
		return -errno;
	return (unsigned short)ifr.ifr_flags;
}

int pyr_set_ifflags(int fd, const char *name, int flags)
{
	struct ifreq ifr;
	memset(&ifr, 0, sizeof(ifr));
	strncpy(ifr.ifr_name, name, IFNAMSIZ - 1);
	ifr.ifr_flags = (short)flags;
	RET(ioctl(fd, SIOCSIFFLAGS, &ifr));
}

int pyr_sethostname(const char *name, size_t len) { RET(sethostname(name, len)); }

/* fcntl(2) with an int argument: F_ADD_SEALS of the stub's memfd, F_SETPIPE_SZ */
int pyr_fcntl_int(int fd, int cmd, int arg) { RET(fcntl(fd, cmd, arg)); }

/* fork(), as os.fork() does it, but born in the cgroup2 cgroup that cgroup_fd (a directory) names:
 * clone3(CLONE_INTO_CGROUP).  A pid written to cgroup.procs instead takes the kernel's global cgroup migration
 * lock for write, which first waits for an RCU grace period (4-20 ms here); a clone takes it for read only.
 *
 * The Python steps are os.fork()'s own (PyOS_BeforeFork, then PyOS_AfterFork_Child or _Parent), under the GIL,
 * which cffi released around this call.  The raw system call skips glibc's fork(): its atfork handlers and its
 * locks (malloc's) are not taken, so the caller must be the process's only thread (init.py checks), and glibc's
 * cached thread id in the child stays the parent's (only raise() and pthread_kill() read it: both then fail with
 * ESRCH in the child instead of signalling anyone).  Returns the child's pid, 0 in the child, or -errno. */
#ifndef SYS_clone3
#define SYS_clone3 435
#endif
#define PYR_CLONE_INTO_CGROUP 0x200000000ULL

struct pyr_clone_args {
	uint64_t flags, pidfd, child_tid, parent_tid, exit_signal, stack, stack_size, tls, set_tid, set_tid_size,
		cgroup;
};

/* in the stable ABI since 3.7; cffi's Py_LIMITED_API (3.2) hides their declarations */
extern void PyOS_BeforeFork(void);
extern void PyOS_AfterFork_Parent(void);
extern void PyOS_AfterFork_Child(void);

int pyr_fork_into_cgroup(int cgroup_fd)
{
	struct pyr_clone_args args;
	PyGILState_STATE gil = PyGILState_Ensure();
	long pid;
	int err;

	memset(&args, 0, sizeof args);
	args.flags = PYR_CLONE_INTO_CGROUP;
	args.exit_signal = SIGCHLD;
	args.cgroup = (uint64_t)cgroup_fd;
	PyOS_BeforeFork();
	pid = syscall(SYS_clone3, &args, sizeof args);
	err = errno;
	if (pid == 0)
		PyOS_AfterFork_Child();
	else
		PyOS_AfterFork_Parent();
	PyGILState_Release(gil);
	return pid < 0 ? -err : (int)pid;
}
