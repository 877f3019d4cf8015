/* LD_PRELOAD shim: fail the Nth write to files under one directory with a chosen errno.
 *
 * SQLite writes from C, so a Python-level patch cannot reach its writes; this shim wraps the libc calls
 * that write, sync or resize a file (write, pwrite[64], writev, pwritev[2], fsync, fdatasync, ftruncate[64],
 * fallocate[64], posix_fallocate[64]; SQLite calls the *64 names).
 *
 * Environment (read at every call, so a forked child configured after the fork is covered; the count
 * restarts in each process):
 *   FAULTSHIM_DIR      only descriptors whose /proc/self/fd path is this directory or below it count
 *                      (unset: the shim does nothing)
 *   FAULTSHIM_AT       N >= 1: the Nth counted write fails (0 or unset: none fails, only counted)
 *   FAULTSHIM_ERRNO    the errno of the failure (a number, e.g. 28 ENOSPC, 5 EIO)
 *   FAULTSHIM_PERSIST  "1": the Nth and every later counted write fail; else only the Nth
 *   FAULTSHIM_LOG      a file to append one line per counted write: "<n> <call> <path> ok|fail"
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <sys/uio.h>
#include <unistd.h>

static long counted;
static pid_t counted_pid;

static int under_dir(const char *path, const char *dir) {
    size_t n = strlen(dir);
    while (n > 1 && dir[n - 1] == '/') n--;
    return strncmp(path, dir, n) == 0 && (path[n] == '\0' || path[n] == '/');
}

static int fd_path(int fd, char *out, size_t size) {
    char link[64];
    snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
    ssize_t len = readlink(link, out, size - 1);
    if (len < 0) return -1;
    out[len] = '\0';
    return 0;
}

static void log_line(const char *line) {
    const char *log = getenv("FAULTSHIM_LOG");
    if (!log || !*log) return;
    /* Raw system calls: the shim must not count (or fail) its own log writes. */
    int fd = (int)syscall(SYS_openat, AT_FDCWD, log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
    if (fd < 0) return;
    syscall(SYS_write, fd, line, strlen(line));
    syscall(SYS_close, fd);
}

/* 0: let the call through; else the errno it must fail with. */
static int fault(int fd, const char *call) {
    const char *dir = getenv("FAULTSHIM_DIR");
    if (!dir || !*dir) return 0;
    char path[PATH_MAX];
    if (fd_path(fd, path, sizeof path) != 0 || !under_dir(path, dir)) return 0;
    int saved = errno;
    pid_t pid = getpid();
    if (__atomic_exchange_n(&counted_pid, pid, __ATOMIC_SEQ_CST) != pid) __atomic_store_n(&counted, 0, __ATOMIC_SEQ_CST);
    long n = __atomic_add_fetch(&counted, 1, __ATOMIC_SEQ_CST);
    const char *at_s = getenv("FAULTSHIM_AT"), *errno_s = getenv("FAULTSHIM_ERRNO");
    const char *persist_s = getenv("FAULTSHIM_PERSIST");
    long at = at_s ? atol(at_s) : 0;
    int persist = persist_s && strcmp(persist_s, "1") == 0;
    int failing = at > 0 && (n == at || (persist && n > at));
    char line[PATH_MAX + 64];
    snprintf(line, sizeof line, "%ld %s %s %s\n", n, call, path, failing ? "fail" : "ok");
    log_line(line);
    errno = saved;
    if (!failing) return 0;
    int code = errno_s ? atoi(errno_s) : 0;
    return code > 0 ? code : EIO;
}

#define REAL(name) static __typeof__(name) *real_##name; \
    if (!real_##name) real_##name = (__typeof__(name) *)dlsym(RTLD_NEXT, #name)
#define FAIL_OR(fd, call) do { int e_ = fault((fd), (call)); if (e_) { errno = e_; return -1; } } while (0)

ssize_t write(int fd, const void *buf, size_t count) {
    REAL(write);
    FAIL_OR(fd, "write");
    return real_write(fd, buf, count);
}

ssize_t pwrite(int fd, const void *buf, size_t count, off_t offset) {
    REAL(pwrite);
    FAIL_OR(fd, "pwrite");
    return real_pwrite(fd, buf, count, offset);
}

ssize_t pwrite64(int fd, const void *buf, size_t count, off64_t offset) {
    REAL(pwrite64);
    FAIL_OR(fd, "pwrite64");
    return real_pwrite64(fd, buf, count, offset);
}

ssize_t writev(int fd, const struct iovec *iov, int iovcnt) {
    REAL(writev);
    FAIL_OR(fd, "writev");
    return real_writev(fd, iov, iovcnt);
}

ssize_t pwritev(int fd, const struct iovec *iov, int iovcnt, off_t offset) {
    REAL(pwritev);
    FAIL_OR(fd, "pwritev");
    return real_pwritev(fd, iov, iovcnt, offset);
}

ssize_t pwritev2(int fd, const struct iovec *iov, int iovcnt, off_t offset, int flags) {
    REAL(pwritev2);
    FAIL_OR(fd, "pwritev2");
    return real_pwritev2(fd, iov, iovcnt, offset, flags);
}

int fsync(int fd) {
    REAL(fsync);
    FAIL_OR(fd, "fsync");
    return real_fsync(fd);
}

int fdatasync(int fd) {
    REAL(fdatasync);
    FAIL_OR(fd, "fdatasync");
    return real_fdatasync(fd);
}

int ftruncate(int fd, off_t length) {
    REAL(ftruncate);
    FAIL_OR(fd, "ftruncate");
    return real_ftruncate(fd, length);
}

int ftruncate64(int fd, off64_t length) {
    REAL(ftruncate64);
    FAIL_OR(fd, "ftruncate64");
    return real_ftruncate64(fd, length);
}

int fallocate(int fd, int mode, off_t offset, off_t len) {
    REAL(fallocate);
    FAIL_OR(fd, "fallocate");
    return real_fallocate(fd, mode, offset, len);
}

int posix_fallocate(int fd, off_t offset, off_t len) {
    REAL(posix_fallocate);
    int e = fault(fd, "posix_fallocate");  /* returns the error instead of setting errno */
    return e ? e : real_posix_fallocate(fd, offset, len);
}

int fallocate64(int fd, int mode, off64_t offset, off64_t len) {
    REAL(fallocate64);
    FAIL_OR(fd, "fallocate64");
    return real_fallocate64(fd, mode, offset, len);
}

int posix_fallocate64(int fd, off64_t offset, off64_t len) {
    REAL(posix_fallocate64);
    int e = fault(fd, "posix_fallocate64");
    return e ? e : real_posix_fallocate64(fd, offset, len);
}

ssize_t pwritev64(int fd, const struct iovec *iov, int iovcnt, off64_t offset) {
    REAL(pwritev64);
    FAIL_OR(fd, "pwritev64");
    return real_pwritev64(fd, iov, iovcnt, offset);
}

ssize_t pwritev64v2(int fd, const struct iovec *iov, int iovcnt, off64_t offset, int flags) {
    REAL(pwritev64v2);
    FAIL_OR(fd, "pwritev64v2");
    return real_pwritev64v2(fd, iov, iovcnt, offset, flags);
}
