/* Discovery (include/certmon/daemon/discovery.h): the union of the sources' lists, and the
 * files kind. The header has the picture; this file says why where it matters. */
#include "certmon/daemon/discovery.h"
#include "certmon/base/error.h"
#include "certmon/base/log.h"
#include "certmon/config/filesd.h"

#include <errno.h>
#include <fcntl.h>
#include <glob.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

struct cm_discovery {
    uv_loop_t *loop;
    struct cm_gen *loaded;  /* referenced: the configuration of the sources */
    struct cm_gen *current; /* referenced: the last union (NULL: none made yet) */
    struct cm_disc_source *sources;
    size_t nsources;
    cm_discovery_apply_fn apply;
    void *arg;
    bool started, closing;
    unsigned handles; /* open handles (timers, watches) */
    unsigned scans;   /* reads on the thread pool */
};

/* ---- The union ---- */

struct cand {
    const struct cm_config_target *t;
    size_t order;
    struct cm_disc_source *src;
};

static int cand_cmp(const void *a, const void *b)
{
    const struct cand *x = a, *y = b;
    int c = strcmp(x->t->name, y->t->name);

    return c ? c : (x->order > y->order) - (x->order < y->order);
}

/* Composes the configured targets and every source's lists into dm->current, and hands it to
 * apply once started. A name the configuration has, or an earlier entry took, is left out. */
static int apply_union(struct cm_discovery *dm)
{
    const struct cm_config *base = dm->loaded->cfg;
    size_t total = 0, nlists = 0, k = 0, nextra = 0;
    struct cand *c;
    const struct cm_config_target **extra;
    struct cm_gen_targets **lists;
    struct cm_gen *g;
    int rc;

    for (size_t i = 0; i < dm->nsources; i++) {
        nlists += dm->sources[i].nlists;
        for (size_t j = 0; j < dm->sources[i].nlists; j++)
            total += dm->sources[i].lists[j]->n;
    }
    c = malloc((total ? total : 1) * sizeof(*c));
    extra = malloc((total ? total : 1) * sizeof(*extra));
    lists = malloc((nlists ? nlists : 1) * sizeof(*lists));
    if (!c || !extra || !lists) {
        free(c);
        free(extra);
        free(lists);
        return -ENOMEM;
    }
    nlists = 0;
    for (size_t i = 0; i < dm->nsources; i++) {
        struct cm_disc_source *s = &dm->sources[i];
        s->applied = 0;
        for (size_t j = 0; j < s->nlists; j++) {
            lists[nlists++] = s->lists[j];
            for (size_t m = 0; m < s->lists[j]->n; m++, k++)
                c[k] = (struct cand){&s->lists[j]->v[m], k, s};
        }
    }
    qsort(c, total, sizeof(*c), cand_cmp);
    for (size_t i = 0; i < total; i++) {
        const struct cm_config_target *t = c[i].t;
        char at[32] = "";
        if (t->line > 0)
            snprintf(at, sizeof(at), ":%d", t->line);
        if (i > 0 && !strcmp(c[i - 1].t->name, t->name)) {
            cm_log_warn("discovery", "target=%s file=%s%s left out: %s found it first", t->name,
                        t->file, at, c[i - 1].t->file);
            continue;
        }
        if (cm_config_find(base, t->name)) {
            cm_log_warn("discovery",
                        "target=%s file=%s%s left out: a configured target has that name", t->name,
                        t->file, at);
            continue;
        }
        extra[nextra++] = t;
        c[i].src->applied++;
    }
    /* Nothing discovered: the configuration's own generation, not a copy of its targets (at
     * 100,000 configured targets a copy is 40 MB). */
    if (nextra == 0) {
        g = cm_gen_ref(dm->loaded);
        rc = 0;
    } else {
        g = cm_gen_compose(dm->loaded, extra, nextra, lists, nlists, &rc);
    }
    free(c);
    free(extra);
    free(lists);
    if (!g)
        return rc;
    cm_gen_unref(dm->current);
    dm->current = g;
    if (dm->started && !dm->closing)
        dm->apply(dm->arg, cm_gen_ref(g));
    return 0;
}

int cm_disc_source_update(struct cm_disc_source *src, struct cm_gen_targets *const *lists, size_t n,
                          const char *error)
{
    struct cm_gen_targets **nl = malloc((n ? n : 1) * sizeof(*nl));
    char *err = error ? strdup(error) : NULL;
    struct cm_gen_targets **old = src->lists;
    size_t nold = src->nlists;
    int rc;

    if (!nl || (error && !err)) {
        free(nl);
        free(err);
        return -ENOMEM;
    }
    for (size_t i = 0; i < n; i++)
        nl[i] = cm_gen_targets_ref(lists[i]);
    src->lists = nl;
    src->nlists = n;
    if ((rc = apply_union(src->dm)) < 0) {
        /* Nothing applied: the old list stays what is in force. */
        src->lists = old;
        src->nlists = nold;
        for (size_t i = 0; i < n; i++)
            cm_gen_targets_unref(nl[i]);
        free(nl);
        free(err);
        return rc;
    }
    for (size_t i = 0; i < nold; i++)
        cm_gen_targets_unref(old[i]);
    free(old);
    free(src->last_error);
    src->last_error = err;
    return 0;
}

struct cm_gen *cm_discovery_gen(struct cm_discovery *dm)
{
    if (!dm->current && apply_union(dm) < 0)
        return NULL;
    return cm_gen_ref(dm->current);
}

struct cm_disc_source *cm_discovery_source(struct cm_discovery *dm, size_t i)
{
    return i < dm->nsources ? &dm->sources[i] : NULL;
}

/* ---- Files ---- */

/* What tells a file's content changed without reading it: a rename over it changes dev/ino,
 * a write changes size, mtime or ctime (nanoseconds). */
struct file_sig {
    dev_t dev;
    ino_t ino;
    off_t size;
    struct timespec mtim, ctim;
};

static struct file_sig sig_of(const struct stat *st)
{
    return (struct file_sig){st->st_dev, st->st_ino, st->st_size, st->st_mtim, st->st_ctim};
}

static bool sig_eq(const struct file_sig *a, const struct file_sig *b)
{
    return a->dev == b->dev && a->ino == b->ino && a->size == b->size &&
           a->mtim.tv_sec == b->mtim.tv_sec && a->mtim.tv_nsec == b->mtim.tv_nsec &&
           a->ctim.tv_sec == b->ctim.tv_sec && a->ctim.tv_nsec == b->ctim.tv_nsec;
}

/* One file a source's patterns matched. */
struct dfile {
    char *path;
    struct file_sig sig; /* of the content last read, good or bad */
    bool have_sig;
    struct cm_sd_doc doc; /* the last good content: a reload turns it into targets anew */
    bool have_doc;
    struct cm_gen_targets *list; /* doc's targets under the current configuration, or NULL */
    uint64_t errors;             /* reads that failed */
    int64_t last_success;        /* Unix seconds; 0: none */
    bool valid;                  /* the last read was good */
};

struct fsrc {
    struct dfile *files; /* sorted by path */
    size_t nfiles;
    uv_timer_t timer; /* refresh, and the debounce of change events */
    bool timer_init, debouncing;
    uv_fs_event_t **watches;
    size_t nwatches;
    struct scan *scan; /* in flight */
    bool again;        /* a change came during it */
    bool rewatch;      /* a pattern's directory was unreadable: watch afresh once it is back
                        * (a directory made anew is another inode) */
    uint64_t refresh_ms;
};

static void dfile_clear(struct dfile *f)
{
    free(f->path);
    cm_sd_doc_clear(&f->doc);
    cm_gen_targets_unref(f->list);
    memset(f, 0, sizeof(*f));
}

/* What a read found for one file. */
enum sf_state { SF_SAME, SF_GOOD, SF_BAD };

struct scan_out {
    char *path;
    enum sf_state st;
    struct file_sig sig;
    bool have_sig;
    struct cm_sd_doc doc;       /* SF_GOOD */
    struct cm_config_target *v; /* SF_GOOD */
    size_t n;
    struct cm_config_errors errs; /* SF_BAD: every problem, "FILE[:LINE]: ..." */
};

/* One read of a source's files, on the thread pool. Its inputs are its own: the patterns are
 * the referenced configuration's, the signatures of what was read last are copied. */
struct scan {
    uv_work_t req;
    struct cm_disc_source *src;
    struct cm_gen *gen; /* referenced */
    size_t source;
    struct {
        char *path;
        struct file_sig sig;
        bool have;
    } * known; /* sorted by path */
    size_t nknown;
    struct scan_out *out; /* sorted by path */
    size_t nout;
    char fatal[600]; /* not empty: the patterns could not be expanded; nothing changes */
    uint64_t run_ns, run_cpu_ns; /* time spent on the thread pool: wall, and CPU */
    int glob_errno;
    char glob_path[256];
};

static void add_err(struct cm_config_errors *e, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void add_err(struct cm_config_errors *e, const char *fmt, ...)
{
    char *msg, **n;
    va_list ap;
    int rc;

    va_start(ap, fmt);
    rc = vasprintf(&msg, fmt, ap);
    va_end(ap);
    if (rc < 0)
        return;
    if (!(n = realloc(e->msgs, (e->count + 1) * sizeof(*n)))) {
        free(msg);
        return;
    }
    e->msgs = n;
    e->msgs[e->count++] = msg;
}

static void scan_free(struct scan *s)
{
    for (size_t i = 0; i < s->nknown; i++)
        free(s->known[i].path);
    free(s->known);
    for (size_t i = 0; i < s->nout; i++) {
        free(s->out[i].path);
        cm_sd_doc_clear(&s->out[i].doc);
        cm_config_targets_free(s->out[i].v, s->out[i].n);
        cm_config_errors_clear(&s->out[i].errs);
    }
    free(s->out);
    cm_gen_unref(s->gen);
    free(s);
}

static int str_cmp(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static __thread struct scan *glob_scan; /* the scan a glob's error callback reports to */

static int on_glob_error(const char *path, int err)
{
    if (glob_scan && !glob_scan->glob_errno) {
        glob_scan->glob_errno = err;
        snprintf(glob_scan->glob_path, sizeof(glob_scan->glob_path), "%s", path);
    }
    return 1; /* stop: a directory that cannot be read must not look empty */
}

/* Expands the patterns into a sorted list of distinct paths. Returns 0, or -1 with s->fatal. */
static int expand_patterns(struct scan *s, const struct cm_config_discovery *cd, char ***out,
                           size_t *count)
{
    char **v = NULL;
    size_t n = 0, cap = 0;

    for (size_t p = 0; p < cd->file_count; p++) {
        glob_t gl;
        int rc;

        glob_scan = s;
        rc = glob(cd->files[p], GLOB_ERR, on_glob_error, &gl);
        glob_scan = NULL;
        if (rc == GLOB_NOMATCH)
            continue;
        if (rc != 0) {
            if (rc == GLOB_ABORTED && s->glob_errno)
                snprintf(s->fatal, sizeof(s->fatal), "%s: %s: %s", cd->files[p], s->glob_path,
                         strerror(s->glob_errno));
            else
                snprintf(s->fatal, sizeof(s->fatal), "%s: %s", cd->files[p],
                         rc == GLOB_NOSPACE ? "out of memory" : "cannot be expanded");
            if (rc != GLOB_NOSPACE)
                globfree(&gl);
            goto fail;
        }
        for (size_t i = 0; i < gl.gl_pathc; i++) {
            if (n >= CM_DISC_MAX_FILES) {
                globfree(&gl);
                snprintf(s->fatal, sizeof(s->fatal), "the patterns match more than %u files",
                         CM_DISC_MAX_FILES);
                goto fail;
            }
            if (n == cap) {
                size_t nc = cap ? 2 * cap : 16;
                char **nv = realloc(v, nc * sizeof(*nv));
                if (!nv) {
                    globfree(&gl);
                    goto nomem;
                }
                v = nv;
                cap = nc;
            }
            if (!(v[n] = strdup(gl.gl_pathv[i]))) {
                globfree(&gl);
                goto nomem;
            }
            n++;
        }
        globfree(&gl);
    }
    qsort(v, n, sizeof(*v), str_cmp);
    *count = 0;
    for (size_t i = 0; i < n; i++) {
        if (*count && !strcmp(v[*count - 1], v[i]))
            free(v[i]);
        else
            v[(*count)++] = v[i];
    }
    *out = v;
    return 0;
nomem:
    snprintf(s->fatal, sizeof(s->fatal), "out of memory");
fail:
    for (size_t i = 0; i < n; i++)
        free(v[i]);
    free(v);
    return -1;
}

/* Reads the file at path whole (without waiting on a FIFO, at most CM_SD_MAX_BYTES). Returns
 * 0 with a malloc'd buffer, or an errno value (EINVAL: not a regular file, EFBIG: too large). */
static int read_whole(const char *path, char **buf, size_t *len, struct file_sig *sig)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK), e = 0;
    struct stat st;
    size_t got = 0;
    char *b = NULL;

    if (fd < 0)
        return errno;
    if (fstat(fd, &st) < 0) {
        e = errno;
    } else if (!S_ISREG(st.st_mode)) {
        e = EINVAL;
    } else if ((uint64_t)st.st_size > CM_SD_MAX_BYTES) {
        e = EFBIG;
    } else if (!(b = malloc((size_t)st.st_size + 1))) {
        e = ENOMEM;
    } else {
        /* The file may grow while it is read: what fstat said is what is read. */
        while (got < (size_t)st.st_size) {
            ssize_t r = read(fd, b + got, (size_t)st.st_size - got);
            if (r < 0 && errno == EINTR)
                continue;
            if (r < 0) {
                e = errno;
                break;
            }
            if (r == 0)
                break;
            got += (size_t)r;
        }
        *sig = sig_of(&st);
    }
    close(fd);
    if (e) {
        free(b);
        return e;
    }
    *buf = b;
    *len = got;
    return 0;
}

/* Reads, parses and turns one file into targets (thread pool). */
static void scan_file(struct scan *s, struct scan_out *o)
{
    const struct cm_config *cfg = s->gen->cfg;
    enum cm_sd_format fmt;
    char *buf = NULL, err[512];
    size_t len = 0;
    int e, line = 0, rc;

    if ((e = read_whole(o->path, &buf, &len, &o->sig)) != 0) {
        add_err(&o->errs, "%s: %s", o->path,
                e == EINVAL  ? "not a regular file"
                : e == EFBIG ? "larger than 16 MiB"
                             : strerror(e));
        o->st = SF_BAD;
        return;
    }
    if (cm_sd_format_of(o->path, &fmt) < 0) {
        add_err(&o->errs, "%s: not a .json, .yml or .yaml file", o->path);
        o->st = SF_BAD;
    } else if ((rc = cm_sd_parse(buf, len, fmt, &o->doc, err, sizeof(err), &line)) < 0) {
        if (line > 0)
            add_err(&o->errs, "%s:%d: %s", o->path, line, rc == -ENOMEM ? "out of memory" : err);
        else
            add_err(&o->errs, "%s: %s", o->path, rc == -ENOMEM ? "out of memory" : err);
        o->st = SF_BAD;
    } else if ((rc = cm_config_discover(cfg, s->source, o->path, &o->doc, &o->v, &o->n, &o->errs)) <
               0) {
        if (rc == -ENOMEM && o->errs.count == 0)
            add_err(&o->errs, "%s: out of memory", o->path);
        cm_sd_doc_clear(&o->doc);
        o->st = SF_BAD;
    } else {
        o->st = SF_GOOD;
    }
    free(buf);
}

/* CPU time of the calling thread, ns: what a read and an apply cost, whatever the load. */
static uint64_t thread_cpu_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void scan_run(uv_work_t *req)
{
    struct scan *s = req->data;
    const struct cm_config_discovery *cd = &s->gen->cfg->discovery[s->source];
    char **paths = NULL;
    size_t n = 0, k = 0;
    uint64_t t0 = uv_hrtime(), c0 = thread_cpu_ns();

    if (expand_patterns(s, cd, &paths, &n) < 0) {
        s->run_ns = uv_hrtime() - t0;
        s->run_cpu_ns = thread_cpu_ns() - c0;
        return;
    }
    if (!(s->out = calloc(n ? n : 1, sizeof(*s->out)))) {
        snprintf(s->fatal, sizeof(s->fatal), "out of memory");
        goto out;
    }
    for (size_t i = 0; i < n; i++) {
        struct scan_out *o = &s->out[s->nout];
        struct stat st;

        if (stat(paths[i], &st) < 0) {
            if (errno == ENOENT)
                continue; /* gone since the glob: as if not matched */
            o->path = paths[i];
            paths[i] = NULL;
            s->nout++;
            add_err(&o->errs, "%s: %s", o->path, strerror(errno));
            o->st = SF_BAD;
            continue;
        }
        o->path = paths[i];
        paths[i] = NULL;
        s->nout++;
        /* The file as it is now: a read that fails (no permission) is not repeated, nor
         * reported again, until the file changes. */
        o->sig = sig_of(&st);
        o->have_sig = true;
        /* Unchanged since the last read (good or bad): nothing to read. */
        while (k < s->nknown && strcmp(s->known[k].path, o->path) < 0)
            k++;
        if (k < s->nknown && !strcmp(s->known[k].path, o->path) && s->known[k].have &&
            sig_eq(&o->sig, &s->known[k].sig)) {
            o->st = SF_SAME;
            continue;
        }
        scan_file(s, o);
    }
out:
    for (size_t i = 0; i < n; i++)
        free(paths[i]);
    free(paths);
    s->run_ns = uv_hrtime() - t0;
    s->run_cpu_ns = thread_cpu_ns() - c0;
}

static int64_t now_s(void)
{
    return (int64_t)time(NULL);
}

/* Takes a read's results into the source's files (loop): changed content replaces a file's
 * targets, a bad read keeps them, a file no longer matched takes them along. Applies the
 * source's new list when anything changed. */
static void scan_merge(struct cm_disc_source *src, struct scan *s)
{
    struct fsrc *fs = src->impl;
    struct dfile *nf;
    bool changed = false, bad = false;
    char *first_error = NULL;

    if (s->fatal[0]) {
        fs->rewatch = true;
        if (!src->last_error || strcmp(src->last_error, s->fatal))
            cm_log_warn("discovery", "source=%s %s; its targets stay as they were", src->name,
                        s->fatal);
        free(src->last_error);
        src->last_error = strdup(s->fatal);
        return;
    }
    if (!(nf = calloc(s->nout ? s->nout : 1, sizeof(*nf)))) {
        cm_log_error("discovery", "source=%s out of memory taking a read in", src->name);
        return;
    }
    /* Both lists are sorted by path: one walk pairs them. */
    for (size_t i = 0, j = 0; i < s->nout; i++) {
        struct scan_out *o = &s->out[i];
        struct dfile *f = &nf[i], *old = NULL;

        while (j < fs->nfiles && strcmp(fs->files[j].path, o->path) < 0)
            j++;
        if (j < fs->nfiles && !strcmp(fs->files[j].path, o->path))
            old = &fs->files[j++];
        if (old) {
            *f = *old;
            memset(old, 0, sizeof(*old));
        } else {
            f->path = o->path;
            o->path = NULL;
        }
        switch (o->st) {
        case SF_SAME:
            if (!f->valid)
                bad = true;
            break;
        case SF_GOOD: {
            struct cm_gen_targets *l = cm_gen_targets_new(o->v, o->n);
            o->v = NULL;
            if (!l) {
                cm_log_error("discovery", "file=%s out of memory: its previous targets stay",
                             f->path);
                break;
            }
            cm_gen_targets_unref(f->list);
            f->list = l;
            cm_sd_doc_clear(&f->doc);
            f->doc = o->doc;
            memset(&o->doc, 0, sizeof(o->doc));
            f->have_doc = true;
            f->sig = o->sig;
            f->have_sig = true;
            f->valid = true;
            f->last_success = now_s();
            changed = true;
            cm_log_info("discovery", "source=%s file=%s targets=%zu read", src->name, f->path,
                        l->n);
            break;
        }
        case SF_BAD:
            f->sig = o->sig;
            f->have_sig = o->have_sig;
            f->valid = false;
            f->errors++;
            bad = true;
            for (size_t m = 0; m < o->errs.count && m < 10; m++)
                cm_log_warn("discovery", "%s", o->errs.msgs[m]);
            if (o->errs.count > 10)
                cm_log_warn("discovery", "file=%s %zu more problems", f->path, o->errs.count - 10);
            cm_log_warn("discovery", "file=%s not applied: its previous %zu targets stay", f->path,
                        f->list ? f->list->n : 0);
            if (!first_error && o->errs.count)
                first_error = o->errs.msgs[0];
            break;
        }
    }
    for (size_t j = 0; j < fs->nfiles; j++) {
        struct dfile *f = &fs->files[j];
        if (!f->path)
            continue;
        if (f->list) {
            changed = true;
            cm_log_info("discovery", "source=%s file=%s gone: its %zu targets are dropped",
                        src->name, f->path, f->list->n);
        }
        dfile_clear(f);
    }
    free(fs->files);
    fs->files = nf;
    fs->nfiles = s->nout;
    const char *err = bad ? (first_error ? first_error : "a file failed") : NULL;
    if (!changed) {
        /* Only the error changed: nothing to apply. */
        char *e = err ? strdup(err) : NULL;
        free(src->last_error);
        src->last_error = e;
        return;
    }
    struct cm_gen_targets **lists = calloc(fs->nfiles ? fs->nfiles : 1, sizeof(*lists));
    size_t n = 0;
    if (!lists) {
        cm_log_error("discovery", "source=%s out of memory applying its targets", src->name);
        return;
    }
    for (size_t i = 0; i < fs->nfiles; i++)
        if (fs->files[i].list)
            lists[n++] = fs->files[i].list;
    if (cm_disc_source_update(src, lists, n, err) < 0)
        cm_log_error("discovery", "source=%s out of memory applying its targets", src->name);
    free(lists);
}

/* A read of src's files with a copy of what it knows. NULL when out of memory. */
static struct scan *scan_new(struct cm_disc_source *src)
{
    struct cm_discovery *dm = src->dm;
    struct fsrc *fs = src->impl;
    struct scan *s = calloc(1, sizeof(*s));

    if (!s)
        return NULL;
    s->req.data = s;
    s->src = src;
    s->source = src->index;
    s->gen = cm_gen_ref(dm->loaded);
    if (!(s->known = calloc(fs->nfiles ? fs->nfiles : 1, sizeof(*s->known)))) {
        scan_free(s);
        return NULL;
    }
    for (size_t i = 0; i < fs->nfiles; i++) {
        if (!(s->known[i].path = strdup(fs->files[i].path))) {
            scan_free(s);
            return NULL;
        }
        s->known[i].sig = fs->files[i].sig;
        s->known[i].have = fs->files[i].have_sig;
        s->nknown++;
    }
    return s;
}

static void maybe_free(struct cm_discovery *dm);
static void scan_start(struct cm_disc_source *src);

static void watch_dirs(struct cm_disc_source *src, const struct cm_config_discovery *cd);
static void on_handle_closed(uv_handle_t *h);

static void scan_done(uv_work_t *req, int status)
{
    struct scan *s = req->data;
    struct cm_disc_source *src = s->src;
    struct cm_discovery *dm = src->dm;
    struct fsrc *fs = src->impl;

    dm->scans--;
    fs->scan = NULL;
    bool fatal = s->fatal[0] != '\0';
    uint64_t t0 = uv_hrtime(), c0 = thread_cpu_ns();

    if (status == 0 && !dm->closing) {
        scan_merge(src, s);
        cm_log_debug("discovery",
                     "source=%s files=%zu read_ms=%.1f read_cpu_ms=%.1f apply_ms=%.1f "
                     "apply_cpu_ms=%.1f",
                     src->name, s->nout, (double)s->run_ns / 1e6, (double)s->run_cpu_ns / 1e6,
                     (double)(uv_hrtime() - t0) / 1e6, (double)(thread_cpu_ns() - c0) / 1e6);
    }
    scan_free(s);
    if (dm->closing) {
        maybe_free(dm);
        return;
    }
    if (fs->rewatch && status == 0 && !fatal) {
        fs->rewatch = false;
        for (size_t j = 0; j < fs->nwatches; j++)
            uv_close((uv_handle_t *)fs->watches[j], on_handle_closed);
        free(fs->watches);
        fs->watches = NULL;
        fs->nwatches = 0;
        watch_dirs(src, &dm->loaded->cfg->discovery[src->index]);
    }
    if (fs->again) {
        fs->again = false;
        scan_start(src);
    }
}

static void scan_start(struct cm_disc_source *src)
{
    struct cm_discovery *dm = src->dm;
    struct fsrc *fs = src->impl;
    struct scan *s;
    int rc;

    if (fs->scan) {
        fs->again = true;
        return;
    }
    if (!(s = scan_new(src))) {
        cm_log_error("discovery", "source=%s out of memory starting a read", src->name);
        return;
    }
    if ((rc = uv_queue_work(dm->loop, &s->req, scan_run, scan_done)) < 0) {
        cm_log_error("discovery", "source=%s cannot start a read: %s", src->name, uv_strerror(rc));
        scan_free(s);
        return;
    }
    fs->scan = s;
    dm->scans++;
}

static void on_timer(uv_timer_t *t)
{
    struct cm_disc_source *src = t->data;
    struct fsrc *fs = src->impl;

    fs->debouncing = false;
    scan_start(src);
}

static void on_fs_event(uv_fs_event_t *h, const char *filename, int events, int status)
{
    struct cm_disc_source *src = h->data;
    struct fsrc *fs = src->impl;

    (void)filename;
    (void)events;
    (void)status;
    /* The first event of a burst starts the wait; the read after it sees the whole burst.
     * The refresh goes on from there. */
    if (fs->debouncing || src->dm->closing)
        return;
    fs->debouncing = true;
    uv_timer_start(&fs->timer, on_timer, CM_DISC_DEBOUNCE_MS, fs->refresh_ms);
}

/* The directory part of a pattern, or NULL when it holds a wildcard itself (such a source is
 * read every refresh only). */
static char *pattern_dir(const char *pat)
{
    const char *slash = strrchr(pat, '/');
    char *dir;

    if (!slash)
        return NULL;
    dir = strndup(pat, slash == pat ? 1 : (size_t)(slash - pat));
    if (dir && strpbrk(dir, "*?[")) {
        free(dir);
        return NULL;
    }
    return dir;
}

static void on_handle_closed(uv_handle_t *h)
{
    struct cm_discovery *dm = h->data ? ((struct cm_disc_source *)h->data)->dm : NULL;

    if (h->type == UV_FS_EVENT)
        free(h);
    if (dm) {
        dm->handles--;
        maybe_free(dm);
    }
}

uv_loop_t *cm__disc_loop(const struct cm_disc_source *src)
{
    return src->dm->loop;
}

const struct cm_config *cm__disc_config(const struct cm_disc_source *src)
{
    return src->dm->loaded->cfg;
}

void cm__disc_handle_open(struct cm_disc_source *src)
{
    src->dm->handles++;
}

void cm__disc_handle_closed(uv_handle_t *h)
{
    on_handle_closed(h);
}

static void watch_dirs(struct cm_disc_source *src, const struct cm_config_discovery *cd)
{
    struct cm_discovery *dm = src->dm;
    struct fsrc *fs = src->impl;

    if (!(fs->watches = calloc(cd->file_count ? cd->file_count : 1, sizeof(*fs->watches))))
        return;
    for (size_t p = 0; p < cd->file_count; p++) {
        char *dir = pattern_dir(cd->files[p]);
        uv_fs_event_t *h;
        bool dup = false;
        int rc;

        if (!dir) {
            cm_log_info("discovery",
                        "source=%s pattern=%s has a wildcard in its directory: "
                        "read every %llu ms, not watched",
                        src->name, cd->files[p], (unsigned long long)fs->refresh_ms);
            continue;
        }
        for (size_t q = 0; q < p && !dup; q++) {
            char *other = pattern_dir(cd->files[q]);
            dup = other && !strcmp(other, dir);
            free(other);
        }
        if (dup || !(h = calloc(1, sizeof(*h)))) {
            free(dir);
            continue;
        }
        uv_fs_event_init(dm->loop, h);
        h->data = src;
        dm->handles++;
        if ((rc = uv_fs_event_start(h, on_fs_event, dir, 0)) < 0) {
            cm_log_warn("discovery",
                        "source=%s directory=%s not watched (%s): its changes are "
                        "seen every %llu ms",
                        src->name, dir, uv_strerror(rc), (unsigned long long)fs->refresh_ms);
            uv_close((uv_handle_t *)h, on_handle_closed);
        } else {
            fs->watches[fs->nwatches++] = h;
        }
        free(dir);
    }
}

/* ---- The files kind's lifetime ---- */

/* Takes prev's files of the source named like src, and turns their last good content into
 * targets under the new configuration. */
static void files_take_over(struct cm_disc_source *src, struct cm_disc_source *psrc)
{
    const struct cm_config *cfg = src->dm->loaded->cfg;
    struct fsrc *fs = src->impl, *pfs = psrc ? psrc->impl : NULL;
    struct cm_gen_targets **lists;
    size_t n = 0;

    if (!pfs || !pfs->nfiles)
        return;
    fs->files = pfs->files;
    fs->nfiles = pfs->nfiles;
    pfs->files = NULL;
    pfs->nfiles = 0;
    if (!(lists = calloc(fs->nfiles, sizeof(*lists))))
        return;
    for (size_t i = 0; i < fs->nfiles; i++) {
        struct dfile *f = &fs->files[i];
        struct cm_config_errors errs = {0};
        struct cm_config_target *v;
        size_t nv;
        int rc;

        cm_gen_targets_unref(f->list);
        f->list = NULL;
        if (!f->have_doc)
            continue;
        if ((rc = cm_config_discover(cfg, src->index, f->path, &f->doc, &v, &nv, &errs)) < 0) {
            for (size_t m = 0; m < errs.count && m < 10; m++)
                cm_log_warn("discovery", "%s", errs.msgs[m]);
            cm_log_warn("discovery",
                        "file=%s its targets are dropped: they do not fit the new "
                        "configuration",
                        f->path);
            cm_config_errors_clear(&errs);
            f->valid = false;
            f->errors++;
            continue;
        }
        if ((f->list = cm_gen_targets_new(v, nv)))
            lists[n++] = f->list;
    }
    if (cm_disc_source_update(src, lists, n, NULL) < 0)
        cm_log_error("discovery", "source=%s out of memory keeping its targets", src->name);
    free(lists);
}

static int files_init(struct cm_disc_source *src, const struct cm_config_discovery *cd)
{
    struct fsrc *fs = calloc(1, sizeof(*fs));

    if (!fs)
        return -ENOMEM;
    fs->refresh_ms = cd->refresh_ms;
    src->impl = fs;
    return 0;
}

static void files_read_now(struct cm_disc_source *src)
{
    struct scan *s = scan_new(src);

    if (!s) {
        cm_log_error("discovery", "source=%s out of memory reading it", src->name);
        return;
    }
    scan_run(&s->req);
    scan_merge(src, s);
    scan_free(s);
}

static void files_start(struct cm_disc_source *src, const struct cm_config_discovery *cd)
{
    struct cm_discovery *dm = src->dm;
    struct fsrc *fs = src->impl;

    uv_timer_init(dm->loop, &fs->timer);
    fs->timer.data = src;
    fs->timer_init = true;
    dm->handles++;
    watch_dirs(src, cd);
    /* A read now, then every refresh: what changed since the start's read or since the
     * previous configuration's is picked up at once. */
    uv_timer_start(&fs->timer, on_timer, 0, fs->refresh_ms);
}

static void files_close(struct cm_disc_source *src)
{
    struct fsrc *fs = src->impl;

    if (fs->timer_init)
        uv_close((uv_handle_t *)&fs->timer, on_handle_closed);
    for (size_t j = 0; j < fs->nwatches; j++)
        uv_close((uv_handle_t *)fs->watches[j], on_handle_closed);
    fs->nwatches = 0;
    /* A read not yet begun ends now; one under way reports and is dropped. */
    if (fs->scan)
        uv_cancel((uv_req_t *)&fs->scan->req);
}

static void files_free(struct cm_disc_source *src)
{
    struct fsrc *fs = src->impl;

    for (size_t j = 0; j < fs->nfiles; j++)
        dfile_clear(&fs->files[j]);
    free(fs->files);
    free(fs->watches);
    free(fs);
}

static size_t files_nrows(const struct cm_disc_source *src)
{
    return 1 + ((const struct fsrc *)src->impl)->nfiles;
}

/* The source's row and one per file into v (room for files_nrows); *k counts what was
 * filled. Returns 0 or -ENOMEM. */
static int files_rows(const struct cm_disc_source *src, struct cm_metrics_discovery *v, size_t *k)
{
    const struct fsrc *fs = src->impl;

    v[*k] = (struct cm_metrics_discovery){.files = fs->nfiles, .targets = src->applied};
    if (!(v[*k].source = strdup(src->name)))
        return -ENOMEM;
    (*k)++;
    for (size_t j = 0; j < fs->nfiles; j++) {
        const struct dfile *f = &fs->files[j];
        v[*k] = (struct cm_metrics_discovery){
            .errors = f->errors, .last_success = f->last_success, .valid = f->valid};
        v[*k].source = strdup(src->name);
        v[*k].file = strdup(f->path);
        (*k)++;
        if (!v[*k - 1].source || !v[*k - 1].file)
            return -ENOMEM;
    }
    return 0;
}

/* ---- Kinds and lifetime ---- */

/* What a kind of source does besides handing its list to cm_disc_source_update. A new kind
 * (DNS: probe/dnsdisc.h) adds its row; init makes src->impl, take_over takes what the source
 * of the same name and kind in the previous discovery held (once every source exists: it may
 * apply), close closes its handles (counted in dm->handles) and cancels its work (dm->scans),
 * free frees impl once both are done, rows gives its /metrics rows (the source's first). */
struct kind_ops {
    int (*init)(struct cm_disc_source *src, const struct cm_config_discovery *cd);
    void (*take_over)(struct cm_disc_source *src, struct cm_disc_source *psrc);
    void (*read_now)(struct cm_disc_source *src);
    void (*start)(struct cm_disc_source *src, const struct cm_config_discovery *cd);
    void (*close)(struct cm_disc_source *src);
    void (*free)(struct cm_disc_source *src);
    size_t (*nrows)(const struct cm_disc_source *src);
    int (*rows)(const struct cm_disc_source *src, struct cm_metrics_discovery *v, size_t *k);
};

static const struct kind_ops kinds[] = {
    [CM_DISCOVERY_FILES] = {files_init, files_take_over, files_read_now, files_start, files_close,
                            files_free, files_nrows, files_rows},
    /* DNS sources look up on the loop only, from their start (no read_now). */
    [CM_DISCOVERY_SRV] = {cm__discdns_init, cm__discdns_take_over, NULL, cm__discdns_start,
                          cm__discdns_close, cm__discdns_free, cm__discdns_nrows, cm__discdns_rows},
    [CM_DISCOVERY_MX] = {cm__discdns_init, cm__discdns_take_over, NULL, cm__discdns_start,
                         cm__discdns_close, cm__discdns_free, cm__discdns_nrows, cm__discdns_rows},
};

static const struct kind_ops *ops_of(const struct cm_disc_source *src)
{
    return &kinds[src->kind];
}

int cm_discovery_new(uv_loop_t *loop, struct cm_gen *loaded, struct cm_discovery *prev,
                     cm_discovery_apply_fn apply, void *arg, struct cm_discovery **out)
{
    const struct cm_config *cfg = loaded->cfg;
    struct cm_discovery *dm = calloc(1, sizeof(*dm));

    *out = NULL;
    if (!dm || !(dm->sources = calloc(cfg->discovery_count ? cfg->discovery_count : 1,
                                      sizeof(*dm->sources)))) {
        free(dm);
        return -ENOMEM;
    }
    dm->loop = loop;
    dm->loaded = cm_gen_ref(loaded);
    dm->apply = apply;
    dm->arg = arg;
    for (size_t i = 0; i < cfg->discovery_count; i++) {
        struct cm_disc_source *src = &dm->sources[i];

        src->kind = cfg->discovery[i].kind;
        src->index = i;
        src->name = cfg->discovery[i].name;
        src->dm = dm;
        if (ops_of(src)->init(src, &cfg->discovery[i]) < 0) {
            cm_discovery_close(dm);
            return -ENOMEM;
        }
        dm->nsources++;
    }
    for (size_t i = 0; prev && i < dm->nsources; i++) {
        struct cm_disc_source *src = &dm->sources[i], *psrc = NULL;
        for (size_t j = 0; j < prev->nsources && !psrc; j++)
            if (prev->sources[j].kind == src->kind && !strcmp(prev->sources[j].name, src->name))
                psrc = &prev->sources[j];
        if (psrc)
            ops_of(src)->take_over(src, psrc);
    }
    *out = dm;
    return 0;
}

void cm_discovery_read_now(struct cm_discovery *dm)
{
    for (size_t i = 0; i < dm->nsources; i++)
        if (ops_of(&dm->sources[i])->read_now)
            ops_of(&dm->sources[i])->read_now(&dm->sources[i]);
}

int cm_discovery_start(struct cm_discovery *dm)
{
    const struct cm_config *cfg = dm->loaded->cfg;

    dm->started = true;
    for (size_t i = 0; i < dm->nsources; i++)
        ops_of(&dm->sources[i])->start(&dm->sources[i], &cfg->discovery[i]);
    return 0;
}

static void maybe_free(struct cm_discovery *dm)
{
    if (!dm->closing || dm->handles || dm->scans)
        return;
    for (size_t i = 0; i < dm->nsources; i++) {
        struct cm_disc_source *src = &dm->sources[i];
        for (size_t j = 0; j < src->nlists; j++)
            cm_gen_targets_unref(src->lists[j]);
        free(src->lists);
        free(src->last_error);
        ops_of(src)->free(src);
    }
    free(dm->sources);
    cm_gen_unref(dm->current);
    cm_gen_unref(dm->loaded);
    free(dm);
}

void cm_discovery_close(struct cm_discovery *dm)
{
    if (!dm || dm->closing)
        return;
    dm->closing = true;
    for (size_t i = 0; i < dm->nsources; i++)
        ops_of(&dm->sources[i])->close(&dm->sources[i]);
    maybe_free(dm);
}

/* ---- Metrics ---- */

void cm_discovery_stats_free(struct cm_metrics_discovery *v, size_t n)
{
    for (size_t i = 0; v && i < n; i++) {
        free((char *)v[i].source);
        free((char *)v[i].file);
    }
    free(v);
}

int cm_discovery_stats(const struct cm_discovery *dm, struct cm_metrics_discovery **out, size_t *n)
{
    size_t rows = 0, k = 0;
    struct cm_metrics_discovery *v;

    *out = NULL;
    *n = 0;
    for (size_t i = 0; i < dm->nsources; i++)
        rows += ops_of(&dm->sources[i])->nrows(&dm->sources[i]);
    if (!rows)
        return 0;
    if (!(v = calloc(rows, sizeof(*v))))
        return -ENOMEM;
    for (size_t i = 0; i < dm->nsources; i++) {
        if (ops_of(&dm->sources[i])->rows(&dm->sources[i], v, &k) < 0) {
            cm_discovery_stats_free(v, k);
            return -ENOMEM;
        }
    }
    *out = v;
    *n = k;
    return 0;
}
