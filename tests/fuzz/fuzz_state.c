/* libFuzzer harness: the state file loader (cm_state_load in src/daemon/state.c), both its line
 * layout and its whole-tree fallback, and what is built from a loaded state: each entry's
 * metrics view (the daemon's view hooks) rendered as /metrics, and the state written back.
 *
 * The input is written as a file in a private directory and loaded. Whatever it holds, the
 * load succeeds or names the problem, and a state that loads keeps its promises: every
 * report is a JSON object (the API serves the text as it is), /metrics is well-formed text
 * (one sample or comment per line: hostile names and labels stay escaped), and writing it
 * out and loading that again gives the same state file. */
#include "fuzz_util.h"

#include "certmon/base/error.h"
#include "certmon/analysis/metrics.h"
#include "certmon/daemon/state.h"

#include <ctype.h>

/* A fixed save time keeps the written file reproducible. */
#define NOW ((time_t)1796083200)

static char in_path[4200], out_path[4200];

static void *view_build(json_t *report, const char *name, void *arg)
{
    (void)name;
    (void)arg;
    return cm_metrics_view_new(report);
}

static void view_free(void *v)
{
    cm_metrics_view_free(v);
}

static const struct cm_state_view_hooks hooks = {view_build, view_free, NULL};

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    fz_init("state");
    fz_path(in_path, sizeof(in_path), "state.json");
    fz_path(out_path, sizeof(out_path), "again.json");
    return 0;
}

/* Every line of the exposition is a comment or a sample: a name, optional labels, a value. */
static void check_metrics(const char *text, size_t len)
{
    const char *p = text, *end = text + len;

    FZ_CHECK(strlen(text) == len);
    while (p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        FZ_CHECK(nl != NULL); /* the exposition ends with a newline */
        FZ_CHECK(nl > p);     /* no empty line */
        FZ_CHECK(*p == '#' || isalpha((unsigned char)*p) || *p == '_');
        p = nl + 1;
    }
}

static struct cm_state *load(const char *path, int *rc)
{
    struct cm_state *s;
    char err[600] = "";

    if (cm_state_new(&s) < 0)
        return NULL;
    cm_state_set_view_hooks(s, &hooks);
    *rc = cm_state_load(s, path, err, sizeof(err));
    FZ_CHECK(*rc == 0 || *rc == CM_ESTATE || *rc == -ENOMEM);
    if (*rc < 0) {
        size_t n;
        cm_state_entries(s, &n);
        FZ_CHECK(err[0] != '\0' && n == 0); /* a reason, and nothing half-loaded */
    }
    return s;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct cm_state *s, *again;
    struct cm_state_entry *const *es;
    const struct cm_metrics_view **views;
    struct cm_metrics_buf mb = {0};
    char *text = NULL, *text2 = NULL;
    size_t n, len = 0, len2 = 0;
    int rc;

    fz_write(in_path, data, size);
    if (!(s = load(in_path, &rc)))
        return 0;
    if (rc < 0)
        goto out;

    es = cm_state_entries(s, &n);
    if ((views = calloc(n ? n : 1, sizeof(*views)))) {
        for (size_t i = 0; i < n; i++) {
            if (es[i]->report) {
                json_error_t je;
                json_t *j = json_loads(es[i]->report, 0, &je);
                FZ_CHECK(json_is_object(j));
                json_decref(j);
            }
            views[i] = es[i]->view;
        }
        if (cm_metrics_render(views, n, NULL, NULL, &mb) == 0)
            check_metrics(mb.data ? mb.data : "", mb.len);
        cm_metrics_buf_free(&mb);
        free(views);
    }

    /* Written back and loaded again, it is the same state. */
    if (cm_state_serialize(s, NOW, &text, &len) == 0) {
        fz_write(out_path, text, len); /* cm_state_write_file would fsync each time */
        if ((again = load(out_path, &rc))) {
            FZ_CHECK(rc == 0 || rc == -ENOMEM);
            if (rc == 0 && cm_state_serialize(again, NOW, &text2, &len2) == 0) {
                FZ_CHECK(len == len2 && !memcmp(text, text2, len));
                free(text2);
            }
            cm_state_free(again);
        }
        free(text);
    }
out:
    cm_state_free(s);
    return 0;
}
