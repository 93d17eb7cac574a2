/* Helpers shared by the libFuzzer harnesses (header-only: each harness is one program).
 *
 * The loaders under test read files by path, so a harness writes its input into a private
 * directory made once per process under $TMPDIR (tests/fuzz/run.sh points TMPDIR at a
 * directory of its own and removes it): nothing is ever written into the source tree. */
#ifndef CERTMON_FUZZ_UTIL_H
#define CERTMON_FUZZ_UTIL_H

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "certmon/base/log.h"

/* An invariant of the code under test: a violation is a finding, so it aborts (libFuzzer then
 * saves the input) in every build type, unlike assert. */
#define FZ_CHECK(cond)                                                                             \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "%s:%d: invariant failed: %s\n", __FILE__, __LINE__, #cond);           \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv);

/* The LLVMFuzzerInitialize of a harness that needs no setup but quiet logging (below errors:
 * the code under test logs every bad input, which would drown libFuzzer's own output). A
 * harness with setup of its own writes its LLVMFuzzerInitialize itself. */
#define FZ_QUIET_INIT                                                                              \
    int LLVMFuzzerInitialize(int *argc, char ***argv)                                              \
    {                                                                                              \
        (void)argc;                                                                                \
        (void)argv;                                                                                \
        cm_log_threshold = CM_LOG_ERROR;                                                           \
        return 0;                                                                                  \
    }

/* The harness's private directory (made by fz_init). */
static char fz_dir[4096];

static int fz_remove_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    remove(path);
    return 0;
}

/* Removes fz_dir at a normal exit (after a crash it stays, beside the reproducer's run). */
static void fz_cleanup(void)
{
    if (fz_dir[0])
        nftw(fz_dir, fz_remove_one, 8, FTW_DEPTH | FTW_PHYS);
}

/* Makes fz_dir and quiets logging below errors. Exits on failure: without its directory
 * a harness cannot run at all. */
__attribute__((unused)) static void fz_init(const char *name)
{
    const char *tmp = getenv("TMPDIR");

    cm_log_threshold = CM_LOG_ERROR;
    snprintf(fz_dir, sizeof(fz_dir), "%s/certmon-%s-XXXXXX", tmp && *tmp ? tmp : "/tmp", name);
    if (!mkdtemp(fz_dir)) {
        fprintf(stderr, "fuzz_%s: cannot make a directory under %s: %s\n", name,
                tmp && *tmp ? tmp : "/tmp", strerror(errno));
        exit(1);
    }
    atexit(fz_cleanup);
}

/* fz_dir + "/" + name into buf. */
__attribute__((unused)) static const char *fz_path(char *buf, size_t len, const char *name)
{
    snprintf(buf, len, "%s/%s", fz_dir, name);
    return buf;
}

/* Writes len bytes to path (created or truncated). Exits on failure: a harness that could
 * not write its input would fuzz nothing while looking busy. */
__attribute__((unused)) static void fz_write(const char *path, const void *data, size_t len)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    const char *p = data;

    if (fd < 0) {
        fprintf(stderr, "fuzz: cannot write %s: %s\n", path, strerror(errno));
        exit(1);
    }
    while (len > 0) {
        ssize_t n = write(fd, p, len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            fprintf(stderr, "fuzz: cannot write %s: %s\n", path, strerror(errno));
            exit(1);
        }
        p += n;
        len -= (size_t)n;
    }
    close(fd);
}

#endif
