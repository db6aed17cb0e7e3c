/*
 * probe.c - runs inside a container and prints, as one JSON object on stdout,
 * what the process sees of its own execution environment.
 *
 * Built by conformance/spec_checks.py with `gcc -static -O2` into a temp dir
 * (never committed as a binary) and copied into the bundle rootfs as /probe.
 * It must not depend on anything in the rootfs: static, no libc NSS lookups.
 *
 * Usage: /probe [ACTION=PATH ...]
 *   stat=PATH   lstat PATH: type, mode, rdev major:minor, symlink target
 *   read=PATH   first 4 KiB of PATH (or the errno name)
 *   write=PATH  open(PATH, O_WRONLY|O_CREAT); a PATH ending in '/' creates
 *               and unlinks a file inside that directory ("ok" or errno name)
 *   exit=N      exit with status N after printing
 * The results go to "results": {"ACTION=PATH": {...}} so the host side can
 * assert on them by the same string it passed.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/types.h>
#include <sys/utsname.h>
#include <unistd.h>

extern char **environ;

static int first;

static void jstr(const char *s)
{
	putchar('"');
	for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
		switch (*p) {
		case '"': fputs("\\\"", stdout); break;
		case '\\': fputs("\\\\", stdout); break;
		case '\n': fputs("\\n", stdout); break;
		case '\t': fputs("\\t", stdout); break;
		case '\r': fputs("\\r", stdout); break;
		default:
			if (*p < 0x20 || *p >= 0x7f)
				printf("\\u%04x", *p);
			else
				putchar(*p);
		}
	}
	putchar('"');
}

static void key(const char *k)
{
	if (!first)
		putchar(',');
	first = 0;
	jstr(k);
	putchar(':');
}

static const char *errname(int e)
{
	switch (e) {
	case EPERM: return "EPERM";
	case ENOENT: return "ENOENT";
	case EACCES: return "EACCES";
	case EROFS: return "EROFS";
	case EEXIST: return "EEXIST";
	case EISDIR: return "EISDIR";
	case ENOTDIR: return "ENOTDIR";
	case EINVAL: return "EINVAL";
	case EBUSY: return "EBUSY";
	case ENXIO: return "ENXIO";
	case ENODEV: return "ENODEV";
	case EIO: return "EIO";
	default: {
		static char buf[32];
		snprintf(buf, sizeof buf, "E%d", e);
		return buf;
	}
	}
}

/* Read a whole small file into a static buffer; NULL on error. */
static char *slurp(const char *path, size_t max)
{
	static char buf[1 << 16];
	if (max >= sizeof buf)
		max = sizeof buf - 1;
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return NULL;
	size_t n = 0;
	ssize_t r;
	while (n < max && (r = read(fd, buf + n, max - n)) > 0)
		n += r;
	close(fd);
	buf[n] = 0;
	return buf;
}

/* Lines of a file as a JSON array of strings. */
static void lines_array(const char *path)
{
	char *s = slurp(path, 1 << 16);
	if (!s) {
		fputs("null", stdout);
		return;
	}
	putchar('[');
	int f = 1;
	for (char *line = strtok(s, "\n"); line; line = strtok(NULL, "\n")) {
		if (!f)
			putchar(',');
		f = 0;
		jstr(line);
	}
	putchar(']');
}

/* "Name:\tvalue" field of /proc/self/status as a string (or null). */
static void status_field(const char *name)
{
	char *s = slurp("/proc/self/status", 1 << 16);
	size_t nl = strlen(name);
	for (char *line = s ? strtok(s, "\n") : NULL; line; line = strtok(NULL, "\n")) {
		if (strncmp(line, name, nl) == 0 && line[nl] == ':') {
			char *v = line + nl + 1;
			while (*v == ' ' || *v == '\t')
				v++;
			jstr(v);
			return;
		}
	}
	fputs("null", stdout);
}

static const struct { int res; const char *name; } rlims[] = {
	{ RLIMIT_CPU, "RLIMIT_CPU" }, { RLIMIT_FSIZE, "RLIMIT_FSIZE" },
	{ RLIMIT_DATA, "RLIMIT_DATA" }, { RLIMIT_STACK, "RLIMIT_STACK" },
	{ RLIMIT_CORE, "RLIMIT_CORE" }, { RLIMIT_RSS, "RLIMIT_RSS" },
	{ RLIMIT_NPROC, "RLIMIT_NPROC" }, { RLIMIT_NOFILE, "RLIMIT_NOFILE" },
	{ RLIMIT_MEMLOCK, "RLIMIT_MEMLOCK" }, { RLIMIT_AS, "RLIMIT_AS" },
	{ RLIMIT_LOCKS, "RLIMIT_LOCKS" }, { RLIMIT_SIGPENDING, "RLIMIT_SIGPENDING" },
	{ RLIMIT_MSGQUEUE, "RLIMIT_MSGQUEUE" }, { RLIMIT_NICE, "RLIMIT_NICE" },
	{ RLIMIT_RTPRIO, "RLIMIT_RTPRIO" }, { RLIMIT_RTTIME, "RLIMIT_RTTIME" },
};

static void do_stat(const char *path)
{
	struct stat st;
	first = 1;
	putchar('{');
	if (lstat(path, &st) < 0) {
		key("error");
		jstr(errname(errno));
		putchar('}');
		return;
	}
	const char *type = S_ISREG(st.st_mode) ? "file" : S_ISDIR(st.st_mode) ? "dir" :
		S_ISLNK(st.st_mode) ? "symlink" : S_ISCHR(st.st_mode) ? "char" :
		S_ISBLK(st.st_mode) ? "block" : S_ISFIFO(st.st_mode) ? "fifo" :
		S_ISSOCK(st.st_mode) ? "socket" : "other";
	key("type");
	jstr(type);
	key("mode");
	printf("%u", (unsigned)(st.st_mode & 07777));
	key("uid");
	printf("%u", (unsigned)st.st_uid);
	key("gid");
	printf("%u", (unsigned)st.st_gid);
	key("major");
	printf("%u", major(st.st_rdev));
	key("minor");
	printf("%u", minor(st.st_rdev));
	if (S_ISLNK(st.st_mode)) {
		char buf[PATH_MAX];
		ssize_t n = readlink(path, buf, sizeof buf - 1);
		buf[n < 0 ? 0 : n] = 0;
		key("target");
		jstr(buf);
	}
	putchar('}');
}

static void do_read(const char *path)
{
	char *s = slurp(path, 4096);
	first = 1;
	putchar('{');
	if (!s) {
		key("error");
		jstr(errname(errno));
	} else {
		key("data");
		jstr(s);
	}
	putchar('}');
}

static void do_write(const char *path)
{
	char buf[PATH_MAX];
	size_t n = strlen(path);
	int fd;
	if (n && path[n - 1] == '/') {
		snprintf(buf, sizeof buf, "%s.probe-write", path);
		fd = open(buf, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
		if (fd >= 0)
			unlink(buf);
	} else {
		fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
	}
	int e = errno;
	first = 1;
	putchar('{');
	key("result");
	jstr(fd >= 0 ? "ok" : errname(e));
	putchar('}');
	if (fd >= 0)
		close(fd);
}

int main(int argc, char **argv)
{
	int exit_code = 0;
	/* Snapshot the fd table before we open anything ourselves. */
	int fds[256], nfds = 0;
	struct stat fdst[256];
	for (int fd = 0; fd < 256 && nfds < 256; fd++) {
		if (fstat(fd, &fdst[nfds]) == 0)
			fds[nfds++] = fd;
	}
	mode_t um = umask(0);
	umask(um);

	first = 1;
	putchar('{');

	key("args");
	putchar('[');
	for (int i = 0; i < argc; i++) {
		if (i)
			putchar(',');
		jstr(argv[i]);
	}
	putchar(']');

	key("env");
	putchar('[');
	for (char **e = environ; *e; e++) {
		if (e != environ)
			putchar(',');
		jstr(*e);
	}
	putchar(']');

	char cwd[PATH_MAX];
	key("cwd");
	if (getcwd(cwd, sizeof cwd))
		jstr(cwd);
	else
		fputs("null", stdout);

	key("pid");
	printf("%d", (int)getpid());
	key("ppid");
	printf("%d", (int)getppid());

	uid_t r, e, s;
	getresuid(&r, &e, &s);
	key("uid");
	printf("[%u,%u,%u]", r, e, s);
	gid_t gr, ge, gs;
	getresgid(&gr, &ge, &gs);
	key("gid");
	printf("[%u,%u,%u]", gr, ge, gs);
	gid_t groups[NGROUPS_MAX];
	int ng = getgroups(NGROUPS_MAX, groups);
	key("groups");
	putchar('[');
	for (int i = 0; i < ng; i++)
		printf(i ? ",%u" : "%u", groups[i]);
	putchar(']');

	key("umask");
	printf("%u", (unsigned)um);

	key("caps");
	putchar('{');
	{
		static const char *sets[] = { "CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb" };
		for (int i = 0; i < 5; i++) {
			if (i)
				putchar(',');
			jstr(sets[i]);
			putchar(':');
			status_field(sets[i]);
		}
	}
	putchar('}');

	key("rlimits");
	putchar('{');
	for (size_t i = 0; i < sizeof rlims / sizeof rlims[0]; i++) {
		struct rlimit rl;
		if (i)
			putchar(',');
		jstr(rlims[i].name);
		if (getrlimit(rlims[i].res, &rl) < 0) {
			fputs(":null", stdout);
			continue;
		}
		/* RLIM_INFINITY as -1 would be ambiguous in JSON numbers; print it verbatim. */
		printf(":[%llu,%llu]", (unsigned long long)rl.rlim_cur, (unsigned long long)rl.rlim_max);
	}
	putchar('}');

	key("no_new_privs");
	printf("%d", prctl(PR_GET_NO_NEW_PRIVS, 0, 0, 0, 0));
	key("seccomp");
	status_field("Seccomp");

	key("fds");
	putchar('[');
	for (int i = 0; i < nfds; i++) {
		char p[64], t[PATH_MAX];
		snprintf(p, sizeof p, "/proc/self/fd/%d", fds[i]);
		ssize_t n = readlink(p, t, sizeof t - 1);
		t[n < 0 ? 0 : n] = 0;
		if (i)
			putchar(',');
		printf("{\"fd\":%d,\"dev\":%llu,\"ino\":%llu,\"target\":", fds[i],
		       (unsigned long long)fdst[i].st_dev, (unsigned long long)fdst[i].st_ino);
		jstr(t);
		putchar('}');
	}
	putchar(']');

	struct utsname u;
	uname(&u);
	key("hostname");
	jstr(u.nodename);
	key("domainname");
	jstr(u.domainname);

	key("namespaces");
	putchar('{');
	{
		static const char *ns[] = { "cgroup", "ipc", "mnt", "net", "pid", "user", "uts", "time" };
		int f = 1;
		for (size_t i = 0; i < sizeof ns / sizeof ns[0]; i++) {
			char p[64];
			struct stat st;
			snprintf(p, sizeof p, "/proc/self/ns/%s", ns[i]);
			if (stat(p, &st) < 0)
				continue;
			if (!f)
				putchar(',');
			f = 0;
			jstr(ns[i]);
			printf(":%llu", (unsigned long long)st.st_ino);
		}
	}
	putchar('}');

	key("mountinfo");
	lines_array("/proc/self/mountinfo");
	key("cgroup");
	lines_array("/proc/self/cgroup");

	key("oom_score_adj");
	{
		char *s2 = slurp("/proc/self/oom_score_adj", 64);
		if (s2)
			printf("%d", atoi(s2));
		else
			fputs("null", stdout);
	}

	key("results");
	putchar('{');
	{
		int f = 1;
		for (int i = 1; i < argc; i++) {
			char *eq = strchr(argv[i], '=');
			if (!eq)
				continue;
			if (strncmp(argv[i], "exit=", 5) == 0) {
				exit_code = atoi(eq + 1);
				continue;
			}
			if (!f)
				putchar(',');
			f = 0;
			int save = first;
			jstr(argv[i]);
			putchar(':');
			if (strncmp(argv[i], "stat=", 5) == 0)
				do_stat(eq + 1);
			else if (strncmp(argv[i], "read=", 5) == 0)
				do_read(eq + 1);
			else if (strncmp(argv[i], "write=", 6) == 0)
				do_write(eq + 1);
			else
				fputs("null", stdout);
			first = save;
		}
	}
	putchar('}');

	puts("}");
	fflush(stdout);
	return exit_code;
}
