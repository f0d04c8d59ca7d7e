/* The seccomp probe of tests/e2e.rs: makes each system call named on its
 * command line (all of them without arguments) with harmless arguments, in
 * a forked child of its own, and prints `name=0` when the call succeeded,
 * `name=N` when it failed with errno N, `name=sig:N` when signal N killed
 * the child. Built statically by the test (gcc -static) and run inside a
 * wrun container only: never on the host without a filter. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#ifndef AF_VSOCK
#define AF_VSOCK 40
#endif
#ifndef AF_ALG
#define AF_ALG 38
#endif
#ifndef __NR_io_uring_setup
#define __NR_io_uring_setup 425
#endif
#ifndef __NR_clone3
#define __NR_clone3 435
#endif
#ifndef __NR_fchmodat2
#define __NR_fchmodat2 452
#endif
#define CLONE_NEWNS_ 0x00020000
#define CLONE_NEWUSER_ 0x10000000

static long fork_like(long r)
{
	/* A clone that succeeded returns 0 in the new process: end it. */
	if (r == 0)
		_exit(0);
	if (r > 0)
		waitpid((pid_t)r, NULL, 0);
	return r < 0 ? -1 : 0;
}

static long probe(const char *name)
{
	if (!strcmp(name, "getpid"))
		return syscall(SYS_getpid) > 0 ? 0 : -1;
	if (!strcmp(name, "openat")) {
		long fd = syscall(SYS_openat, AT_FDCWD, "/", O_RDONLY | O_DIRECTORY);
		if (fd >= 0)
			close((int)fd);
		return fd < 0 ? -1 : 0;
	}
	if (!strcmp(name, "io_uring_setup"))
		return syscall(__NR_io_uring_setup, 1, NULL); /* EFAULT if allowed */
	if (!strcmp(name, "add_key"))
		return syscall(SYS_add_key, NULL, NULL, NULL, 0, 0); /* EFAULT */
	if (!strcmp(name, "keyctl"))
		return syscall(SYS_keyctl, 0x7fffffff, 0, 0, 0, 0); /* EOPNOTSUPP */
	if (!strcmp(name, "unshare_user"))
		return syscall(SYS_unshare, CLONE_NEWUSER_);
	if (!strcmp(name, "unshare_mount"))
		return syscall(SYS_unshare, CLONE_NEWNS_);
	if (!strcmp(name, "perf_event_open"))
		return syscall(SYS_perf_event_open, NULL, 0, -1, -1, 0); /* EFAULT */
	if (!strcmp(name, "bpf"))
		return syscall(SYS_bpf, -1, NULL, 0); /* EINVAL */
	if (!strcmp(name, "mount"))
		return syscall(SYS_mount, "none", "/tmp", "tmpfs", 0, NULL);
	if (!strcmp(name, "clone_newns"))
		return fork_like(syscall(SYS_clone, CLONE_NEWNS_ | SIGCHLD, NULL, NULL, NULL, 0));
	if (!strcmp(name, "clone_plain"))
		return fork_like(syscall(SYS_clone, SIGCHLD, NULL, NULL, NULL, 0));
	if (!strcmp(name, "clone3"))
		return syscall(__NR_clone3, NULL, 0); /* EINVAL if allowed */
	if (!strcmp(name, "personality_linux"))
		return syscall(SYS_personality, 0x0) < 0 ? -1 : 0;
	if (!strcmp(name, "personality_query"))
		return syscall(SYS_personality, 0xffffffffUL) < 0 ? -1 : 0;
	if (!strcmp(name, "personality_bad"))
		return syscall(SYS_personality, 0x0400000) < 0 ? -1 : 0; /* ADDR_LIMIT_3GB */
	if (!strcmp(name, "socket_vsock"))
		return syscall(SYS_socket, AF_VSOCK, SOCK_STREAM, 0) < 0 ? -1 : 0;
	if (!strcmp(name, "socket_alg"))
		return syscall(SYS_socket, AF_ALG, SOCK_SEQPACKET, 0) < 0 ? -1 : 0;
	if (!strcmp(name, "socket_unix"))
		return syscall(SYS_socket, AF_UNIX, SOCK_STREAM, 0) < 0 ? -1 : 0;
	if (!strcmp(name, "userfaultfd"))
		return syscall(SYS_userfaultfd, -1); /* EINVAL */
	if (!strcmp(name, "ptrace"))
		return syscall(SYS_ptrace, 2 /* PTRACE_PEEKDATA */, 0, NULL, NULL); /* ESRCH */
	if (!strcmp(name, "kexec_load"))
		return syscall(SYS_kexec_load, 0, 0, NULL, 0);
	if (!strcmp(name, "fchmodat2"))
		return syscall(__NR_fchmodat2, -1, "", 0, 0); /* EBADF/ENOENT */
	if (!strcmp(name, "new_600"))
		return syscall(600);
	errno = 0;
	return -2;
}

static const char *ALL[] = {
	"getpid", "openat", "io_uring_setup", "add_key", "keyctl", "unshare_user",
	"unshare_mount", "perf_event_open", "bpf", "mount", "clone_newns", "clone_plain",
	"clone3", "personality_linux", "personality_query", "personality_bad",
	"socket_vsock", "socket_alg", "socket_unix", "userfaultfd", "ptrace", "kexec_load",
	"fchmodat2", "new_600", NULL,
};

int main(int argc, char **argv)
{
	const char **names = argc > 1 ? (const char **)argv + 1 : ALL;
	for (; *names; names++) {
		int status;
		pid_t pid;
		fflush(stdout);
		pid = fork();
		if (pid < 0)
			return 2;
		if (pid == 0) {
			long r = probe(*names);
			if (r == -2)
				_exit(254);
			_exit(r < 0 ? (errno & 0xff) : 0);
		}
		if (waitpid(pid, &status, 0) != pid)
			return 2;
		if (WIFSIGNALED(status))
			printf("%s=sig:%d\n", *names, WTERMSIG(status));
		else if (WEXITSTATUS(status) == 254)
			printf("%s=unknown\n", *names);
		else
			printf("%s=%d\n", *names, WEXITSTATUS(status));
	}
	return 0;
}
