/* The process's own resources: the open-file limit probes need, and the process_* figures
 * of /metrics read from /proc (include/certmon/daemon/process.h). The I/O that the pure
 * metrics renderer must not do happens here. */
#include "certmon/daemon/process.h"

#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

long cm_fd_limit_fit(long want, long per_probe, const char *who)
{
    struct rlimit rl;
    rlim_t need = (rlim_t)want * (rlim_t)per_probe + 64;

    if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
        return want;
    if (rl.rlim_cur < need) {
        rl.rlim_cur = rl.rlim_max < need ? rl.rlim_max : need;
        setrlimit(RLIMIT_NOFILE, &rl);
        getrlimit(RLIMIT_NOFILE, &rl);
    }
    if (rl.rlim_cur >= need)
        return want;
    long fit = rl.rlim_cur > 64 + (rlim_t)per_probe ? (long)(rl.rlim_cur - 64) / per_probe : 1;
    fprintf(stderr, "%s: only %llu open files allowed; running %ld probes at once, not %ld\n", who,
            (unsigned long long)rl.rlim_cur, fit, want);
    return fit;
}

/* Reads a small /proc file whole. Returns its length or a negative errno. */
static ssize_t read_small(const char *path, char *buf, size_t size)
{
    FILE *fp = fopen(path, "re");
    size_t n;
    int e;

    if (!fp)
        return -errno;
    n = fread(buf, 1, size - 1, fp);
    e = ferror(fp) ? -EIO : 0;
    fclose(fp);
    if (e)
        return e;
    buf[n] = '\0';
    return (ssize_t)n;
}

static int read_process(struct cm_metrics_process *out)
{
    char buf[4096], *p;
    unsigned long long utime, stime, start, vsize;
    long long rss, btime = -1;
    long ticks = sysconf(_SC_CLK_TCK), page = sysconf(_SC_PAGESIZE);
    struct rlimit rl;
    struct dirent *de;
    ssize_t n;
    DIR *d;
    double fds = 0;

    if (ticks <= 0 || page <= 0)
        return -EINVAL;
    if ((n = read_small("/proc/self/stat", buf, sizeof(buf))) < 0)
        return (int)n;
    /* The command name (field 2) may hold spaces and parentheses: fields resume after the
     * last ')'. Then: state (3) ... utime (14), stime (15) ... starttime (22), vsize (23),
     * rss (24). */
    if (!(p = strrchr(buf, ')')) ||
        sscanf(p + 1,
               " %*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu %*d %*d %*d %*d %*d %*d "
               "%llu %llu %lld",
               &utime, &stime, &start, &vsize, &rss) != 5)
        return -EINVAL;
    if ((n = read_small("/proc/stat", buf, sizeof(buf))) < 0)
        return (int)n;
    for (p = buf; p && *p; p = strchr(p, '\n'), p = p ? p + 1 : NULL)
        if (!strncmp(p, "btime ", 6)) {
            btime = strtoll(p + 6, NULL, 10);
            break;
        }
    if (btime < 0)
        return -EINVAL;
    if (!(d = opendir("/proc/self/fd")))
        return -errno;
    /* Our own handle on the directory is not one of the process's descriptors. */
    while ((de = readdir(d)))
        if (de->d_name[0] != '.' && atoi(de->d_name) != dirfd(d))
            fds++;
    closedir(d);
    if (getrlimit(RLIMIT_NOFILE, &rl) < 0)
        return -errno;

    out->cpu_seconds = (double)(utime + stime) / (double)ticks;
    out->resident_bytes = (double)rss * (double)page;
    out->virtual_bytes = (double)vsize;
    out->start_time = (double)btime + (double)start / (double)ticks;
    out->open_fds = fds;
    out->max_fds = rl.rlim_cur == RLIM_INFINITY ? INFINITY : (double)rl.rlim_cur;
    return 0;
}

int cm_process_read(struct cm_metrics_process *out)
{
    int rc = read_process(out);

    if (rc < 0)
        *out = (struct cm_metrics_process){0};
    return rc;
}
