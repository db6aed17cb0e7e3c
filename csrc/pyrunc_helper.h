/* pyrunc_helper.h: the whole C API of pyrunc's syscall helper.
 *
 * This header is also the cffi cdef (csrc/build_helper.py reads it), so it holds only declarations cffi can
 * parse.  Every function is one system call that the Python 3.11 standard library lacks, and returns >= 0 on
 * success or -errno on failure; none prints or decides policy.  Python (pyrunc/linux/) raises typed errors.
 */

int pyr_unshare(int flags);
int pyr_setns(int fd, int nstype);
int pyr_mount(const char *source, const char *target, const char *fstype, unsigned long flags, const char *data);
int pyr_umount2(const char *target, int flags);
int pyr_pivot_root(const char *new_root, const char *put_old);
int pyr_setdomainname(const char *name, size_t len);
int pyr_prctl(int option, unsigned long arg2, unsigned long arg3, unsigned long arg4, unsigned long arg5);
int pyr_openat2(int dirfd, const char *path, uint64_t flags, uint64_t mode, uint64_t resolve);
int pyr_open_tree(int dirfd, const char *path, unsigned int flags);
int pyr_move_mount(int from_dirfd, const char *from_path, int to_dirfd, const char *to_path, unsigned int flags);
int pyr_mount_setattr(int dirfd, const char *path, unsigned int flags, uint64_t attr_set, uint64_t attr_clr,
                      uint64_t propagation, uint64_t userns_fd);
int pyr_capget(uint32_t out[6]);
int pyr_capset(const uint32_t in[6]);
int pyr_keyctl_join_session_keyring(const char *name);
int pyr_keyctl_describe(int key, char *buf, size_t len);
int pyr_keyctl_setperm(int key, uint32_t perm);
int pyr_personality(unsigned long persona);
int pyr_close_range(unsigned int first, unsigned int last, unsigned int flags);
int pyr_bpf(int cmd, void *attr, unsigned int size);
int pyr_sched_setattr(uint32_t policy, uint64_t flags, int32_t nice, uint32_t priority, uint64_t runtime,
                      uint64_t deadline, uint64_t period, uint32_t util_min, uint32_t util_max);
int pyr_ioprio_set(int which, int who, int ioprio);
int pyr_set_mempolicy(int mode, const unsigned long *nodemask, unsigned long maxnode);
int pyr_seccomp(unsigned int op, unsigned int flags, void *args);
int pyr_sched_setaffinity(int pid, size_t size, const char *mask);
int pyr_prlimit(int pid, int resource, uint64_t soft, uint64_t hard);
int pyr_socketpair(int domain, int type, int protocol, int sv[2]);
int pyr_socket(int domain, int type, int protocol);
int pyr_get_ifflags(int fd, const char *name);
int pyr_set_ifflags(int fd, const char *name, int flags);
int pyr_sethostname(const char *name, size_t len);
int pyr_fcntl_int(int fd, int cmd, int arg);
int pyr_fork_into_cgroup(int cgroup_fd);
