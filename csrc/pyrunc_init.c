/* pyrunc-init: the fixed exec tail of every container process (init and exec).
 *
 * Why a separate static program: the container's init waits in "created" state until `pyrunc start`.  Had it
 * waited as a Python process, /proc/<pid>/exe would be the host's python3, and a process in the container (or in
 * a container sharing its pid namespace) could open it and later write it (CVE-2019-5736).  pyrunc instead
 * copies this small static binary into a sealed memfd and execs that: the container can only ever reach a
 * read-only, unlinked copy.  It also keeps Python out of the last steps, which must be exactly these, in
 * runc's order (libcontainer/standard_init_linux.go, finalizeNamespace):
 *
 *   [read the seccomp agent's state message] ->
 *   seccomp (without no_new_privs it is a privileged operation, so it comes before dropping anything) ->
 *   drop bounding set -> keep caps; setgroups/setresgid/setresuid; clear keep caps -> capset, raise ambient
 *   -> no_new_privs -> seccomp (with no_new_privs: as late as possible) -> report ready on the sync fd ->
 *   wait for start on the exec fifo -> close every fd above the kept ones -> execve
 *
 * Each seccomp load that returns a listener fd (SECCOMP_FILTER_FLAG_NEW_LISTENER, for SCMP_ACT_NOTIFY) sends it
 * at once over the notify socket, with the state message as data (runc's utils.SendRawFd), then closes the
 * socket and the listener (the message pipe was read to EOF and closed before any filter): after the filter
 * only sendmsg and close run before the steps above, and the agent holds the only copy of the listener.  So a
 * NOTIFY rule on sendmsg would wait for an agent that can never answer: pyrunc refuses it up front.
 *
 * Protocol: argv is just "pyrunc init" (all `ps` shows, as runc shows "runc init"); envp is the process env plus
 * _PYRUNC_INIT=FD, which the stub removes.  FD is a memfd holding NUL-separated strings: CONTROL PATH ARGV0
 * [ARGS...], read and closed first thing.  CONTROL is key=value pairs joined by commas: uid= gid= (required: a
 * process never keeps pyrunc's ids by omission) sync=FD userns=FD (exec: the user namespace to join first, see
 * join_userns) fifo=FD keep=LASTFD groups=G1:G2 (any number, up to the
 * kernel's NGROUPS_MAX) bnd= eff= prm= inh= amb= (hex capability masks) nnp=0|1 seccomp=FD (a sock_filter array)
 * sflags=N notify=FD (a unix socket connected to the seccomp agent at linux.seccomp.listenerPath) notifymsg=FD (a
 * pipe holding the agent's JSON state message, read to EOF before the filter is loaded).  It never decides
 * policy: pyrunc does.
 * Errors go to the sync fd (before ready) or stderr (after), and the exit status is 127 for exec failure.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <sched.h>
#include <linux/capability.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/syscall.h>
#include <unistd.h>
#include <linux/openat2.h>

#ifndef SYS_close_range
#define SYS_close_range 436
#endif
#ifndef PR_CAP_AMBIENT
#define PR_CAP_AMBIENT 47
#define PR_CAP_AMBIENT_RAISE 2
#define PR_CAP_AMBIENT_CLEAR_ALL 4
#endif

static int sync_fd = -1;

static void fail(const char *op, int err)
{
	char msg[512];
	int n = snprintf(msg, sizeof(msg), "%s: %s", op, strerror(err));
	for (char *p = msg; *p; p++)  /* the house style: lowercase */
		if (*p >= 'A' && *p <= 'Z')
			*p += 'a' - 'A';
	if (sync_fd >= 0)
		(void)!write(sync_fd, msg, n);
	else
		(void)!dprintf(2, "pyrunc-init: %s\n", msg);
	_exit(1);
}

struct control {
	int userns, fifo, keep, nnp, seccomp, notify, notifymsg;
	int have_uid, have_gid;
	uid_t uid;
	gid_t gid;
	unsigned long sflags;
	const char *groups;
	int have_caps;
	uint64_t bnd, eff, prm, inh, amb;
};

/* 0..4294967294: (uid_t)-1 would make setresuid/setresgid leave the ids unchanged (root) */
static unsigned int parse_id(const char *v, const char *what)
{
	char *end;
	errno = 0;
	unsigned long long n = strtoull(v, &end, 10);
	if (!*v || *end || errno || *v == '-' || n >= 0xffffffffULL) {
		char op[64];
		snprintf(op, sizeof(op), "control: invalid %s %.20s", what, v);
		fail(op, EINVAL);
	}
	return (unsigned int)n;
}

static void parse(char *s, struct control *c)
{
	for (char *tok = strtok(s, ","); tok; tok = strtok(NULL, ",")) {
		char *v = strchr(tok, '=');
		if (!v)
			continue;
		*v++ = 0;
		if (!strcmp(tok, "sync")) sync_fd = atoi(v);
		else if (!strcmp(tok, "userns")) c->userns = atoi(v);
		else if (!strcmp(tok, "fifo")) c->fifo = atoi(v);
		else if (!strcmp(tok, "keep")) c->keep = atoi(v);
		else if (!strcmp(tok, "uid")) { c->uid = parse_id(v, "uid"); c->have_uid = 1; }
		else if (!strcmp(tok, "gid")) { c->gid = parse_id(v, "gid"); c->have_gid = 1; }
		else if (!strcmp(tok, "groups")) c->groups = v;
		else if (!strcmp(tok, "nnp")) c->nnp = atoi(v);
		else if (!strcmp(tok, "seccomp")) c->seccomp = atoi(v);
		else if (!strcmp(tok, "sflags")) c->sflags = strtoul(v, NULL, 0);
		else if (!strcmp(tok, "notify")) c->notify = atoi(v);
		else if (!strcmp(tok, "notifymsg")) c->notifymsg = atoi(v);
		else if (!strcmp(tok, "bnd")) { c->bnd = strtoull(v, NULL, 16); c->have_caps = 1; }
		else if (!strcmp(tok, "eff")) c->eff = strtoull(v, NULL, 16);
		else if (!strcmp(tok, "prm")) c->prm = strtoull(v, NULL, 16);
		else if (!strcmp(tok, "inh")) c->inh = strtoull(v, NULL, 16);
		else if (!strcmp(tok, "amb")) c->amb = strtoull(v, NULL, 16);
	}
}

/* exec into a container with a user namespace: pyrunc joined every other namespace and exec'd this stub while
 * still in the host's user namespace, so the stub's mm (mm->user_ns, fixed at execve) belongs to the host's.  The
 * kernel's __ptrace_may_access lets a tracer through a non-dumpable target only with CAP_SYS_PTRACE in the target
 * mm's user_ns: a container process can never attach to (or read /proc/<pid>/mem, environ, fd of) this stub while
 * it still holds every capability, even one with CAP_SYS_PTRACE in the container's user namespace.  Had the stub
 * been exec'd inside that user namespace, the mm would be the container's, and such a process could (M2).
 * Then, as nsexec: become root of the namespace at once (the host's root ids are not mapped in it). */
static void join_userns(struct control *c)
{
	if (setns(c->userns, CLONE_NEWUSER) < 0)
		fail("setns user namespace", errno);
	close(c->userns);
	c->userns = -1;
	if (setresgid(0, 0, 0) < 0)
		fail("setresgid 0 in the user namespace", errno);
	if (setresuid(0, 0, 0) < 0)
		fail("setresuid 0 in the user namespace", errno);
}

static void set_ids(struct control *c)
{
	if (c->groups) {  /* every gid, however many: the kernel's NGROUPS_MAX is the only limit (EINVAL above it) */
		size_t n = *c->groups ? 1 : 0;  /* groups= (empty): no supplementary groups at all */
		for (const char *g = c->groups; *g; g++)
			n += *g == ':';
		gid_t *list = malloc((n + 1) * sizeof(gid_t));
		if (!list)
			fail("setgroups", ENOMEM);
		char *g = (char *)c->groups;
		for (size_t i = 0; i < n; i++) {
			char *next = strchr(g, ':');
			if (next)
				*next = 0;
			list[i] = parse_id(g, "additional gid");
			g = next ? next + 1 : g + strlen(g);
		}
		/* n == 0 under a denied setgroups (a user namespace made by a user that is not root, its gid_map
		 * written without newgidmap): the groups cannot be cleared, and runc leaves them, as here */
		if (setgroups(n, list) < 0 && !(n == 0 && errno == EPERM))
			fail("setgroups", errno);
		free(list);
	}
	/* never skipped: a control without uid= or gid= was refused in main() */
	if (setresgid(c->gid, c->gid, c->gid) < 0)
		fail("setresgid", errno);
	if (setresuid(c->uid, c->uid, c->uid) < 0)
		fail("setresuid", errno);
}

static void set_caps(struct control *c)
{
	struct __user_cap_header_struct hdr = { _LINUX_CAPABILITY_VERSION_3, 0 };
	struct __user_cap_data_struct data[2];
	for (int i = 0; i < 2; i++) {
		data[i].effective = (uint32_t)(c->eff >> (32 * i));
		data[i].permitted = (uint32_t)(c->prm >> (32 * i));
		data[i].inheritable = (uint32_t)(c->inh >> (32 * i));
	}
	if (syscall(SYS_capset, &hdr, data) < 0)
		fail("capset", errno);
	prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0);
	for (int cap = 0; cap < 64; cap++)
		if ((c->amb >> cap) & 1)
			if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_RAISE, cap, 0, 0) < 0)
				fail("raise ambient capability", errno);
}

static char notify_msg[1 << 20];  /* the ContainerProcessState JSON for the seccomp agent */
static size_t notify_len;

static void read_notify_msg(struct control *c)
{
	ssize_t r;
	while (notify_len < sizeof(notify_msg) &&
	       (r = read(c->notifymsg, notify_msg + notify_len, sizeof(notify_msg) - notify_len)) != 0) {
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			fail("read seccomp agent message", errno);
		notify_len += r;
	}
	close(c->notifymsg);
	c->notifymsg = -1;
}

/* one message: the state JSON as data, the listener fd as SCM_RIGHTS; then only the agent holds the listener */
static void send_listener(struct control *c, int listener)
{
	union { char buf[CMSG_SPACE(sizeof(int))]; struct cmsghdr align; } u;
	struct iovec iov = { notify_msg, notify_len };
	struct msghdr msg = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = u.buf, .msg_controllen = sizeof(u.buf) };
	struct cmsghdr *cm = CMSG_FIRSTHDR(&msg);
	cm->cmsg_level = SOL_SOCKET;
	cm->cmsg_type = SCM_RIGHTS;
	cm->cmsg_len = CMSG_LEN(sizeof(int));
	memcpy(CMSG_DATA(cm), &listener, sizeof(int));
	while (sendmsg(c->notify, &msg, MSG_NOSIGNAL) < 0)
		if (errno != EINTR)
			fail("send seccomp listener fd to the agent", errno);
	close(c->notify);
	c->notify = -1;
	close(listener);
}

static void load_seccomp(struct control *c)
{
	struct sock_filter buf[4096];
	ssize_t n = 0, r;
	while ((r = read(c->seccomp, (char *)buf + n, sizeof(buf) - n)) > 0)
		n += r;
	if (r < 0)
		fail("read seccomp program", errno);
	close(c->seccomp);
	struct sock_fprog prog = { (unsigned short)(n / sizeof(struct sock_filter)), buf };
	long listener = syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, c->sflags, &prog);
	if (listener < 0)
		fail("load seccomp filter", errno);
	if (listener > 0 && c->notify >= 0)
		send_listener(c, (int)listener);
}

#ifndef SYS_openat2
#define SYS_openat2 437
#endif
#define PROC_SUPER_MAGIC 0x9fa0

static int is_procfs(int fd)
{
	struct statfs st;
	return fstatfs(fd, &st) == 0 && st.f_type == PROC_SUPER_MAGIC;
}

/* The directory through which the exec fifo is reopened for writing (its fd is O_PATH): the container's
 * /proc/self/fd, verified, and opened before "ready" so that a bad one fails `create` instead of the init.  Not a
 * path string: were /proc not a procfs (a config without a /proc mount), "/proc/self/fd/N" would be whatever the
 * image put there, and opening and writing a regular file would release the process before `start` (L1).  So:
 * /proc itself (not a symlink) must be a procfs, and self/fd is resolved beneath it without crossing a mount
 * (nothing mounted over /proc/self), and must be a procfs too.  No host procfs fd is kept: the init may wait on
 * the fifo for a long time, and its own procfs is all it needs. */
static int open_fd_dir(void)
{
	int proc = open("/proc", O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (proc < 0)
		fail("exec fifo: open /proc", errno);
	if (!is_procfs(proc))
		fail("exec fifo: /proc is not a procfs (the config has no /proc mount)", EINVAL);
	struct open_how how = { .flags = O_PATH | O_DIRECTORY | O_CLOEXEC,
				.resolve = RESOLVE_NO_XDEV | RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS };
	int dir = (int)syscall(SYS_openat2, proc, "self/fd", &how, sizeof(how));
	if (dir < 0)
		fail("exec fifo: open /proc/self/fd in procfs", errno);
	close(proc);
	if (!is_procfs(dir))
		fail("exec fifo: /proc/self/fd is not in procfs", EINVAL);
	return dir;
}

#define INIT_ENV "_PYRUNC_INIT="

/* The protocol, from the memfd named by _PYRUNC_INIT (removed from envp, so the user program never sees it):
 * NUL-separated CONTROL PATH ARGV0 [ARGS...], returned as a NULL-terminated array.  Read through the fd, never
 * a path: nothing of it appears in /proc/<pid>/cmdline. */
static char **read_init_args(char **envp)
{
	int fd = -1;
	char **out = envp;
	for (char **e = envp; *e; e++) {
		if (!strncmp(*e, INIT_ENV, strlen(INIT_ENV)))
			fd = atoi(*e + strlen(INIT_ENV));
		else
			*out++ = *e;
	}
	*out = NULL;
	if (fd < 0)
		fail("init args: no " INIT_ENV "fd in the environment", EINVAL);
	struct stat st;
	if (fstat(fd, &st) < 0)
		fail("init args: fstat", errno);
	char *buf = malloc(st.st_size + 1);
	if (!buf)
		fail("init args", ENOMEM);
	size_t len = 0;
	ssize_t r;
	while (len < (size_t)st.st_size && (r = pread(fd, buf + len, st.st_size - len, len)) != 0) {
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			fail("init args: read", errno);
		len += r;
	}
	close(fd);
	buf[len] = 0;
	size_t n = 0;
	for (size_t i = 0; i < len; i++)
		n += buf[i] == 0;
	if (n < 3 || buf[len - 1] != 0)
		fail("init args: expected control, path and argv", EINVAL);
	char **args = calloc(n + 1, sizeof(char *));
	if (!args)
		fail("init args", ENOMEM);
	for (size_t i = 0, off = 0; i < n; i++, off += strlen(buf + off) + 1)
		args[i] = buf + off;
	return args;
}

int main(int argc, char **argv, char **envp)
{
	struct control c = { .userns = -1, .fifo = -1, .keep = 2, .seccomp = -1, .notify = -1, .notifymsg = -1 };
	/* fexecve of this stub made the process dumpable again: until the final execve (which decides dumpability
	 * for the user program) no container process may open /proc/1/fd, /proc/1/exe or /proc/1/mem of ours
	 * (CVE-2016-9962). */
	prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
	(void)argc;
	(void)argv;
	char **args = read_init_args(envp);
	parse(args[0], &c);
	if (!c.have_uid || !c.have_gid)
		fail("control: uid= and gid= are required", EINVAL);
	if (c.userns >= 0)
		join_userns(&c);

	if (c.notify >= 0 && c.notifymsg >= 0)
		read_notify_msg(&c);
	if (c.seccomp >= 0 && !c.nnp)
		load_seccomp(&c);
	if (c.have_caps) {
		for (int cap = 0; cap <= 63; cap++) {
			if ((c.bnd >> cap) & 1 || prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) == 0)
				continue;
			if (errno == EINVAL)
				break; /* past the kernel's last capability: so is every higher one */
			fail("drop bounding capability", errno);
		}
		if (prctl(PR_SET_KEEPCAPS, 1, 0, 0, 0) < 0)
			fail("set keep caps", errno);
	}
	set_ids(&c);
	if (c.have_caps) {
		prctl(PR_SET_KEEPCAPS, 0, 0, 0, 0);
		set_caps(&c);
	}
	if (c.nnp && prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
		fail("set no_new_privs", errno);
	if (c.seccomp >= 0 && c.nnp)
		load_seccomp(&c);

	int fd_dir = c.fifo >= 0 ? open_fd_dir() : -1;

	/* sync 7: ready.  exec: closing the sync fd without a message tells pyrunc the process is set up.
	 * create (an exec fifo): "ready", then wait for sync 8, which pyrunc sends once state.json is written.
	 *
	 * Why wait: until state.json exists no `pyrunc start` can ever open our fifo, and `delete` cannot find us by
	 * our pid.  Were pyrunc SIGKILLed before writing it, an init already blocked on the fifo would wait forever,
	 * holding its cgroup.  The sync fd tells us: pyrunc holds the only other end, so its death reads as EOF and
	 * we exit.  runc instead compares getppid() with the parent pid it started with, just before the fifo; that
	 * leaves a window (runc killed after the check) and sees nothing in a new pid namespace, where getppid() is
	 * 0 from the start.  PR_SET_PDEATHSIG would not do either: `create` exits normally right after sync 8 and
	 * the init must live on until `start`. */
	if (sync_fd >= 0 && c.fifo >= 0) {
		char go[16];
		ssize_t n;
		if (send(sync_fd, "ready", 5, MSG_NOSIGNAL) != 5)
			_exit(1);  /* pyrunc is gone: nobody can start or delete us */
		while ((n = read(sync_fd, go, sizeof(go))) < 0 && errno == EINTR)
			;
		if (n <= 0)
			_exit(1);
	}
	if (sync_fd >= 0) {
		close(sync_fd);
		sync_fd = -1;
	}

	if (c.fifo >= 0) {  /* created state: block until `pyrunc start` opens the fifo for reading */
		char name[16];
		snprintf(name, sizeof(name), "%d", c.fifo);
		int fd = openat(fd_dir, name, O_WRONLY | O_CLOEXEC);
		if (fd < 0)
			fail("open exec fifo", errno);
		close(fd_dir);
		if (write(fd, "0", 1) != 1)
			fail("write exec fifo", errno);
		close(fd);
		close(c.fifo);
	}
	/* CVE-2024-21626: no fd of pyrunc's, and none the caller leaked, may reach the user program. */
	if (syscall(SYS_close_range, c.keep + 1, ~0U, 0) < 0) {
		for (int fd = c.keep + 1; fd < 65536; fd++)
			close(fd);
	}
	execve(args[1], args + 2, envp);
	int err = errno;
	dprintf(2, "pyrunc-init: exec %s: %s\n", args[1], strerror(err));
	return 127;
}
