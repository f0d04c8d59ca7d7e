// files: a small WASI guest doing real file I/O through wasi-libc, used to
// test directory grants (read-only, read-write) and escapes from them.
//
//   files read PATH          prints the file's contents; exit 0
//   files write PATH TEXT    creates or truncates PATH and writes TEXT; exit 0
//   files pwd                prints getcwd() and $PWD
//
// Any failure prints "error: <op> <path>: <strerror>" on stderr and exits 1.
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static int fail(const char *op, const char *path) {
    fprintf(stderr, "error: %s %s: %s\n", op, path, strerror(errno));
    return 1;
}

static int do_read(const char *path) {
    FILE *f = fopen(path, "rb");
    if (!f) return fail("open", path);
    char buf[4096];
    size_t n;
    while ((n = fread(buf, 1, sizeof buf, f)) > 0) fwrite(buf, 1, n, stdout);
    if (ferror(f)) return fail("read", path);
    fclose(f);
    return 0;
}

static int do_write(const char *path, const char *text) {
    FILE *f = fopen(path, "wb");
    if (!f) return fail("open", path);
    if (fputs(text, f) == EOF) return fail("write", path);
    if (fclose(f) != 0) return fail("close", path);
    return 0;
}

int main(int argc, char **argv) {
    if (argc >= 3 && strcmp(argv[1], "read") == 0) return do_read(argv[2]);
    if (argc >= 4 && strcmp(argv[1], "write") == 0) return do_write(argv[2], argv[3]);
    if (argc >= 2 && strcmp(argv[1], "pwd") == 0) {
        char buf[1024];
        const char *pwd = getenv("PWD");
        printf("cwd=%s\nPWD=%s\n", getcwd(buf, sizeof buf) ? buf : "?", pwd ? pwd : "");
        return 0;
    }
    fprintf(stderr, "usage: files read PATH | write PATH TEXT | pwd\n");
    return 2;
}
