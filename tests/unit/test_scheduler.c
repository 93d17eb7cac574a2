/* Unit tests for the scheduler (src/daemon/scheduler.c) on a real libuv loop with short real delays.
 * Every wait is bounded by a guard timer, and every test ends with the loop closed. */
#include "cmtest.h"

#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "certmon/daemon/scheduler.h"

#define HOUR_MS 3600000ULL
#define MAX_STARTS 8192

/* A job as a caller embeds it, plus what the tests observe of it. */
struct tjob {
    struct cm_sched_job job;
    int id;
    unsigned starts;
    bool running;          /* between its start and cm_sched_done/cm_sched_detach */
    uint64_t added_at;     /* loop time of the latest add or reschedule by the test */
    uint64_t started_at;   /* loop time of its latest start */
    uint64_t due_at_start; /* job.due when it started */
};

enum mode {
    FINISH_NOW, /* the run callback ends the job at once (re-entrant cm_sched_done) */
    HOLD,       /* the job keeps its slot until the test or the finisher ends it */
};

struct harness {
    uv_loop_t loop;
    uv_timer_t guard;    /* bounds every wait */
    uv_timer_t finisher; /* ends held jobs on a repeating tick (start_finisher) */
    bool timed_out;
    bool in_run_until;
    struct cm_sched *s;
    unsigned cap;
    enum mode mode;
    bool fail_runs; /* FINISH_NOW and the finisher report failed runs */
    /* Called on each start instead of the mode's action when set. */
    void (*hook)(struct harness *h, struct tjob *t);
    void *user;
    struct tjob *jobs;
    size_t njobs;
    int order[MAX_STARTS];            /* ids in start order */
    uint64_t start_times[MAX_STARTS]; /* loop time of each start, in the same order */
    size_t norder;
    struct tjob *held[MAX_STARTS];
    size_t nheld;
    unsigned max_running;
    unsigned double_starts;    /* a job started while it was running */
    unsigned over_cap;         /* a start that put more than cap jobs in flight */
    unsigned early_starts;     /* a start before the job was due */
    unsigned depth, max_depth; /* run callbacks in progress: never nested */
    bool finish_all;           /* the finisher ends every held job at each tick, not just one */
};

static struct tjob *tjob_of(struct cm_sched_job *job)
{
    return (struct tjob *)(void *)((char *)job - offsetof(struct tjob, job));
}

static void hold_remove(struct harness *h, struct tjob *t)
{
    for (size_t i = 0; i < h->nheld; i++)
        if (h->held[i] == t) {
            memmove(&h->held[i], &h->held[i + 1], (h->nheld - i - 1) * sizeof(h->held[0]));
            h->nheld--;
            return;
        }
}

/* Ends a running job the way a caller does. */
static void finish(struct harness *h, struct tjob *t, bool failed)
{
    CU_ASSERT_TRUE(t->running);
    t->running = false;
    hold_remove(h, t);
    cm_sched_done(h->s, &t->job, failed);
}

static void detach(struct harness *h, struct tjob *t)
{
    t->running = false;
    hold_remove(h, t);
    cm_sched_detach(h->s, &t->job);
}

static void on_run(struct cm_sched_job *job, void *arg)
{
    struct harness *h = arg;
    struct tjob *t = tjob_of(job);
    uint64_t now = uv_now(&h->loop);
    unsigned running = cm_sched_running(h->s);

    if (t->running)
        h->double_starts++;
    if (running > h->cap)
        h->over_cap++;
    if (running > h->max_running)
        h->max_running = running;
    if (now < job->due)
        h->early_starts++;
    CU_ASSERT_EQUAL(job->state, CM_JOB_RUNNING);
    /* uv_run(UV_RUN_ONCE) would otherwise go on to wait for the next timer: return to
     * run_until so that it sees the start. */
    if (h->in_run_until)
        uv_stop(&h->loop);
    if (h->norder < MAX_STARTS) {
        h->start_times[h->norder] = now;
        h->order[h->norder++] = t->id;
    }
    t->starts++;
    t->started_at = now;
    t->due_at_start = job->due;
    t->running = true;
    if (++h->depth > h->max_depth)
        h->max_depth = h->depth;
    if (h->hook) {
        h->hook(h, t);
    } else if (h->mode == FINISH_NOW) {
        finish(h, t, h->fail_runs);
    } else {
        CU_ASSERT_FATAL(h->nheld < MAX_STARTS);
        h->held[h->nheld++] = t;
    }
    h->depth--;
}

static void on_guard(uv_timer_t *timer)
{
    struct harness *h = timer->data;

    h->timed_out = true;
}

/* Ends the oldest held job (every held job with finish_all; not those this tick starts). */
static void on_finisher(uv_timer_t *timer)
{
    struct harness *h = timer->data;
    size_t n = h->finish_all ? h->nheld : (h->nheld > 0);
    struct tjob *batch[MAX_STARTS];

    memcpy(batch, h->held, n * sizeof(batch[0]));
    for (size_t i = 0; i < n; i++)
        finish(h, batch[i], h->fail_runs);
}

static void setup(struct harness *h, unsigned cap, size_t njobs, enum mode mode)
{
    memset(h, 0, sizeof(*h));
    CU_ASSERT_EQUAL_FATAL(uv_loop_init(&h->loop), 0);
    uv_timer_init(&h->loop, &h->guard);
    uv_timer_init(&h->loop, &h->finisher);
    h->guard.data = h->finisher.data = h;
    h->cap = cap ? cap : 1;
    h->mode = mode;
    CU_ASSERT_EQUAL_FATAL(cm_sched_new(&h->loop, cap, on_run, h, &h->s), 0);
    h->jobs = calloc(njobs ? njobs : 1, sizeof(*h->jobs));
    CU_ASSERT_PTR_NOT_NULL_FATAL(h->jobs);
    h->njobs = njobs;
    for (size_t i = 0; i < njobs; i++) {
        h->jobs[i].id = (int)i;
        h->jobs[i].job.interval_ms = HOUR_MS;
        h->jobs[i].job.retry_min_ms = 1000;
    }
}

static void add(struct harness *h, size_t i, uint64_t delay_ms)
{
    h->jobs[i].added_at = uv_now(&h->loop);
    CU_ASSERT_EQUAL(cm_sched_add(h->s, &h->jobs[i].job, delay_ms), 0);
    CU_ASSERT_EQUAL(h->jobs[i].job.state, CM_JOB_WAITING);
}

static void reschedule(struct harness *h, size_t i, uint64_t delay_ms)
{
    h->jobs[i].added_at = uv_now(&h->loop);
    cm_sched_reschedule(h->s, &h->jobs[i].job, delay_ms);
}

static void start_finisher(struct harness *h, uint64_t every_ms, bool all)
{
    h->finish_all = all;
    uv_timer_start(&h->finisher, on_finisher, every_ms, every_ms);
}

/* Runs the loop until pred holds or max_ms pass. Returns whether pred holds. */
static bool run_until(struct harness *h, bool (*pred)(struct harness *h, size_t n), size_t n,
                      uint64_t max_ms)
{
    h->timed_out = false;
    h->in_run_until = true;
    uv_timer_start(&h->guard, on_guard, max_ms, 0);
    while (!(pred && pred(h, n)) && !h->timed_out)
        uv_run(&h->loop, UV_RUN_ONCE);
    uv_timer_stop(&h->guard);
    h->in_run_until = false;
    return pred && pred(h, n);
}

/* Lets the loop run for ms (for checking that something does not happen). */
static void run_for(struct harness *h, uint64_t ms)
{
    run_until(h, NULL, 0, ms);
}

static bool started_n(struct harness *h, size_t n)
{
    return h->norder >= n;
}

static bool job_started(struct harness *h, size_t i)
{
    return h->jobs[i].starts > 0;
}

/* Jobs 0 to n-1 have all started at least once. */
static bool all_started(struct harness *h, size_t n)
{
    for (size_t i = 0; i < n && i < h->njobs; i++)
        if (!h->jobs[i].starts)
            return false;
    return true;
}

/* The ids in start order, as "3 1 4". */
static void order_text(const struct harness *h, char *buf, size_t len)
{
    size_t used = 0;

    buf[0] = '\0';
    for (size_t i = 0; i < h->norder && used < len; i++)
        used += (size_t)snprintf(buf + used, len - used, "%s%d", i ? " " : "", h->order[i]);
}

#define EXPECT_ORDER(h, want)                                                                      \
    do {                                                                                           \
        char got_[4096];                                                                           \
        order_text((h), got_, sizeof(got_));                                                       \
        EXPECT_STR(got_, (want));                                                                  \
    } while (0)

/* Closes the scheduler and every handle, runs the loop until they are gone and checks that
 * nothing was left behind. */
static void teardown(struct harness *h)
{
    CU_ASSERT_EQUAL(h->double_starts, 0);
    CU_ASSERT_EQUAL(h->over_cap, 0);
    CU_ASSERT_EQUAL(h->early_starts, 0);
    /* A run callback that ends its job starts no other run from inside itself. */
    CU_ASSERT(h->max_depth <= 1);
    cm_sched_close(h->s);
    uv_close((uv_handle_t *)&h->guard, NULL);
    uv_close((uv_handle_t *)&h->finisher, NULL);
    uv_run(&h->loop, UV_RUN_DEFAULT);
    CU_ASSERT(uv_loop_close(&h->loop) == 0);
    free(h->jobs);
}

/* ---- Pure backoff ---- */

static uint64_t delay_after(uint64_t retry_min, uint64_t interval, unsigned failures, bool failed)
{
    struct cm_sched_job j = {
        .interval_ms = interval, .retry_min_ms = retry_min, .failures = failures};

    return cm_sched_next_delay(&j, failed);
}

static void test_next_delay(void)
{
    uint64_t want = 1000;

    /* 1 s, 2 s, 4 s, ... doubling until the interval caps it. */
    for (unsigned f = 1; f <= 40; f++) {
        EXPECT_INT(delay_after(1000, HOUR_MS, f, true), want < HOUR_MS ? want : HOUR_MS);
        if (want < HOUR_MS)
            want *= 2;
    }
    EXPECT_INT(delay_after(1000, HOUR_MS, 1, true), 1000);
    EXPECT_INT(delay_after(1000, HOUR_MS, 2, true), 2000);
    EXPECT_INT(delay_after(1000, HOUR_MS, 3, true), 4000);
    EXPECT_INT(delay_after(1000, HOUR_MS, 12, true), 2048000);
    EXPECT_INT(delay_after(1000, HOUR_MS, 13, true), HOUR_MS);
    /* Huge failure counts stay capped (and do not take 2^32 steps). */
    EXPECT_INT(delay_after(1000, HOUR_MS, 4000000000u, true), HOUR_MS);
    /* No failure yet, or a success: the interval. */
    EXPECT_INT(delay_after(1000, HOUR_MS, 0, true), HOUR_MS);
    EXPECT_INT(delay_after(1000, HOUR_MS, 5, false), HOUR_MS);
    EXPECT_INT(delay_after(1000, HOUR_MS, 0, false), HOUR_MS);
    /* A first retry longer than the interval is cut to the interval. */
    EXPECT_INT(delay_after(5000, 3000, 1, true), 3000);
    EXPECT_INT(delay_after(5000, 3000, 7, true), 3000);
    EXPECT_INT(delay_after(3000, 3000, 1, true), 3000);
    /* An interval that is not a power-of-two multiple is reached exactly. */
    EXPECT_INT(delay_after(1000, 5000, 3, true), 4000);
    EXPECT_INT(delay_after(1000, 5000, 4, true), 5000);
}

/* ---- Order, cap, FIFO ---- */

static void test_due_order(void)
{
    static const uint64_t delays[] = {40, 10, 30, 0, 20};
    struct harness h;

    setup(&h, 10, 5, FINISH_NOW);
    for (size_t i = 0; i < 5; i++)
        add(&h, i, delays[i]);
    EXPECT_INT(cm_sched_waiting(h.s), 5);
    EXPECT_INT(cm_sched_running(h.s), 0);
    CU_ASSERT_TRUE(run_until(&h, all_started, 5, 2000));
    EXPECT_ORDER(&h, "3 1 4 2 0");
    for (size_t i = 0; i < 5; i++) {
        struct tjob *t = &h.jobs[i];
        EXPECT_INT(t->starts, 1);
        EXPECT_INT(t->due_at_start, t->added_at + delays[i]);
        CU_ASSERT_TRUE(t->started_at >= t->due_at_start);
        /* Done at once: waiting again, an interval (within the jitter) later. */
        EXPECT_INT(t->job.state, CM_JOB_WAITING);
        CU_ASSERT_TRUE(t->job.due >= t->started_at + HOUR_MS - 30000);
        CU_ASSERT_TRUE(t->job.due <= t->started_at + HOUR_MS + 30000);
    }
    EXPECT_INT(cm_sched_waiting(h.s), 5);
    EXPECT_INT(cm_sched_running(h.s), 0);
    teardown(&h);
}

static void test_cap(void)
{
    struct harness h;

    setup(&h, 3, 10, HOLD);
    for (size_t i = 0; i < 10; i++)
        add(&h, i, 0);
    EXPECT_INT(cm_sched_waiting(h.s), 10);
    CU_ASSERT_TRUE(run_until(&h, started_n, 3, 2000));
    /* The first tick started exactly the cap; the rest wait in the FIFO. */
    run_for(&h, 20);
    EXPECT_INT(h.norder, 3);
    EXPECT_INT(cm_sched_running(h.s), 3);
    EXPECT_INT(cm_sched_waiting(h.s), 7);
    for (size_t i = 0; i < 10; i++)
        CU_ASSERT_TRUE(h.jobs[i].job.state == (h.jobs[i].starts ? CM_JOB_RUNNING : CM_JOB_READY));
    /* One ends every 2 ms: each end lets exactly one more start. */
    start_finisher(&h, 2, false);
    CU_ASSERT_TRUE(run_until(&h, all_started, 10, 3000));
    EXPECT_INT(h.norder, 10);
    EXPECT_INT(h.max_running, 3);
    for (size_t i = 0; i < 10; i++)
        EXPECT_INT(h.jobs[i].starts, 1);
    teardown(&h);
}

/* Jobs that fall due while every slot is taken start in the order they fell due. */
static void test_fifo(void)
{
    struct harness h;
    static const uint64_t delays[] = {0, 10, 20, 30, 40, 50, 5};

    setup(&h, 1, 7, HOLD);
    for (size_t i = 0; i < 7; i++)
        add(&h, i, delays[i]);
    CU_ASSERT_TRUE(run_until(&h, job_started, 0, 2000));
    run_for(&h, 80);
    EXPECT_ORDER(&h, "0");
    EXPECT_INT(cm_sched_running(h.s), 1);
    EXPECT_INT(cm_sched_waiting(h.s), 6);
    for (size_t i = 1; i < 7; i++)
        EXPECT_INT(h.jobs[i].job.state, CM_JOB_READY);
    /* The end of the running job starts the queue one by one, in due order. */
    h.mode = FINISH_NOW;
    finish(&h, &h.jobs[0], false);
    EXPECT_ORDER(&h, "0 6 1 2 3 4 5");
    EXPECT_INT(cm_sched_running(h.s), 0);
    EXPECT_INT(cm_sched_waiting(h.s), 7);
    EXPECT_INT(h.max_running, 1);
    teardown(&h);
}

/* Jobs due at the same moment all run, each once, never above the cap, in the order they
 * were added: none starves. */
static void test_equally_due(void)
{
    struct harness h;
    bool seen[64] = {false};

    setup(&h, 4, 64, HOLD);
    for (size_t i = 0; i < 64; i++)
        add(&h, i, 5);
    start_finisher(&h, 1, true);
    CU_ASSERT_TRUE(run_until(&h, all_started, 64, 5000));
    EXPECT_INT(h.norder, 64);
    for (size_t i = 0; i < h.norder; i++) {
        CU_ASSERT_FALSE(seen[h.order[i]]);
        seen[h.order[i]] = true;
        EXPECT_INT(h.order[i], i);
    }
    EXPECT_INT(h.max_running, 4);
    teardown(&h);
}

/* Jobs that come due again while they still run are not started a second time. */
static void hook_reschedule_self(struct harness *h, struct tjob *t)
{
    size_t waiting = cm_sched_waiting(h->s);

    /* Moving a running job is a no-op: it stays running and out of the heap. */
    cm_sched_reschedule(h->s, &t->job, 0);
    EXPECT_INT(t->job.state, CM_JOB_RUNNING);
    EXPECT_INT(cm_sched_waiting(h->s), waiting);
    CU_ASSERT_FATAL(h->nheld < MAX_STARTS);
    h->held[h->nheld++] = t;
}

static void test_never_twice(void)
{
    struct harness h;

    setup(&h, 10, 4, HOLD);
    for (size_t i = 0; i < 4; i++) {
        h.jobs[i].job.interval_ms = 5;
        add(&h, i, i);
    }
    h.hook = hook_reschedule_self;
    /* Each run lasts about 20 ms, four times its interval. */
    start_finisher(&h, 20, true);
    run_for(&h, 250);
    EXPECT_INT(h.double_starts, 0);
    for (size_t i = 0; i < 4; i++) {
        CU_ASSERT_TRUE(h.jobs[i].starts >= 3);
        CU_ASSERT_TRUE(h.jobs[i].starts <= 14);
    }
    teardown(&h);
}

/* ---- Rescheduling after a run: interval, jitter, backoff ---- */

struct sampler {
    size_t want, got;
    uint64_t delays[2048];
    unsigned failures[2048];
    const bool *fail_script; /* failed flag of run i (cycled), or NULL for success */
    size_t script_len;
};

/* Ends the run at once, notes how far away the next run was put, and moves it to now so
 * that the next sample comes on the next tick. */
static void hook_sample(struct harness *h, struct tjob *t)
{
    struct sampler *sp = h->user;
    bool failed = sp->fail_script ? sp->fail_script[sp->got % sp->script_len] : false;
    uint64_t now = uv_now(&h->loop);

    finish(h, t, failed);
    EXPECT_INT(t->job.state, CM_JOB_WAITING);
    sp->delays[sp->got] = t->job.due - now;
    sp->failures[sp->got] = t->job.failures;
    if (++sp->got < sp->want)
        cm_sched_reschedule(h->s, &t->job, 0);
    else
        cm_sched_detach(h->s, &t->job);
}

static bool sampled(struct harness *h, size_t n)
{
    const struct sampler *sp = h->user;

    (void)n;
    return sp->got >= sp->want;
}

/* Takes n samples of the delay cm_sched_done picks for a job with that interval. */
static void sample(struct sampler *sp, uint64_t interval, uint64_t retry_min, size_t n)
{
    struct harness h;

    CU_ASSERT_FATAL(n <= 2048);
    sp->want = n;
    sp->got = 0;
    setup(&h, 1, 1, FINISH_NOW);
    h.hook = hook_sample;
    h.user = sp;
    h.jobs[0].job.interval_ms = interval;
    h.jobs[0].job.retry_min_ms = retry_min;
    add(&h, 0, 0);
    CU_ASSERT_TRUE(run_until(&h, sampled, 0, 10000));
    EXPECT_INT(cm_sched_waiting(h.s), 0);
    EXPECT_INT(cm_sched_running(h.s), 0);
    teardown(&h);
}

/* All n samples lie in [lo, hi], and some lie on either side of mid (jitter does vary). */
static void expect_spread(const struct sampler *sp, uint64_t lo, uint64_t mid, uint64_t hi,
                          unsigned line)
{
    uint64_t min = UINT64_MAX, max = 0;

    for (size_t i = 0; i < sp->got; i++) {
        min = sp->delays[i] < min ? sp->delays[i] : min;
        max = sp->delays[i] > max ? sp->delays[i] : max;
    }
    expect_int(sp->got, sp->want, "samples", line);
    CU_assertImplementation(min >= lo, line, "smallest delay within the jitter", __FILE__, "",
                            CU_FALSE);
    CU_assertImplementation(max <= hi, line, "largest delay within the jitter", __FILE__, "",
                            CU_FALSE);
    if (mid) {
        CU_assertImplementation(min < mid, line, "some delay below the interval", __FILE__, "",
                                CU_FALSE);
        CU_assertImplementation(max > mid, line, "some delay above the interval", __FILE__, "",
                                CU_FALSE);
    }
}

static void test_jitter(void)
{
    static struct sampler sp;

    /* +-5%: 200 ms gives 190..210. */
    sample(&sp, 200, 1000, 1000);
    expect_spread(&sp, 190, 200, 210, __LINE__);
    /* +-5% of an hour is 3 min: capped at 30 s. */
    sample(&sp, HOUR_MS, 1000, 1000);
    expect_spread(&sp, HOUR_MS - 30000, HOUR_MS, HOUR_MS + 30000, __LINE__);
    /* Ten minutes is where the cap starts. */
    sample(&sp, 600000, 1000, 500);
    expect_spread(&sp, 570000, 600000, 630000, __LINE__);
    /* Under 20 ms the jitter rounds to nothing. */
    sample(&sp, 19, 1000, 50);
    expect_spread(&sp, 19, 0, 19, __LINE__);
    sample(&sp, 20, 1000, 200);
    expect_spread(&sp, 19, 20, 21, __LINE__);
}

static void test_backoff(void)
{
    static const bool script[] = {true, true, true, true, false, true};
    static const uint64_t want[] = {1000, 2000, 4000, 8000, HOUR_MS, 1000};
    static const unsigned want_failures[] = {1, 2, 3, 4, 0, 1};
    static struct sampler sp;

    sp.fail_script = script;
    sp.script_len = 6;
    sample(&sp, HOUR_MS, 1000, 6);
    for (size_t i = 0; i < sp.got; i++) {
        uint64_t d = want[i % 6], j = d / 20 < 30000 ? d / 20 : 30000;
        EXPECT_INT(sp.failures[i], want_failures[i % 6]);
        CU_ASSERT_TRUE(sp.delays[i] >= d - j);
        CU_ASSERT_TRUE(sp.delays[i] <= d + j);
    }
    /* A first retry longer than the interval: the interval. */
    sp.fail_script = script;
    sp.script_len = 1;
    sample(&sp, 2000, 5000, 20);
    expect_spread(&sp, 1900, 2000, 2100, __LINE__);
    sp.fail_script = NULL;
}

/* The next run really starts an interval (with jitter) after the end of the previous one. */
static void test_interval_real(void)
{
    struct harness h;

    setup(&h, 1, 1, FINISH_NOW);
    h.jobs[0].job.interval_ms = 200;
    add(&h, 0, 0);
    CU_ASSERT_TRUE(run_until(&h, started_n, 4, 3000));
    for (size_t k = 1; k < 4 && k < h.norder; k++) {
        uint64_t d = h.start_times[k] - h.start_times[k - 1];
        CU_ASSERT_TRUE(d >= 190);
        CU_ASSERT_TRUE(d <= 210 + 150); /* timer slack on a busy machine */
    }
    EXPECT_INT(h.jobs[0].starts, 4);
    teardown(&h);
}

/* ---- Moving and removing jobs ---- */

static void test_reschedule(void)
{
    struct harness h;

    setup(&h, 1, 4, HOLD);
    /* A waiting job moved earlier runs at its new time. */
    add(&h, 0, 10000);
    add(&h, 1, 10000);
    reschedule(&h, 0, 20);
    EXPECT_INT(h.jobs[0].job.state, CM_JOB_WAITING);
    EXPECT_INT(h.jobs[0].job.due, h.jobs[0].added_at + 20);
    EXPECT_INT(cm_sched_waiting(h.s), 2);
    CU_ASSERT_TRUE(run_until(&h, job_started, 0, 2000));
    CU_ASSERT_TRUE(h.jobs[0].started_at >= h.jobs[0].added_at + 20);
    CU_ASSERT_TRUE(h.jobs[0].started_at < h.jobs[0].added_at + 1000);
    EXPECT_INT(h.jobs[1].starts, 0);

    /* A running job is left alone. */
    reschedule(&h, 0, 0);
    EXPECT_INT(h.jobs[0].job.state, CM_JOB_RUNNING);
    EXPECT_INT(cm_sched_running(h.s), 1);
    EXPECT_INT(cm_sched_waiting(h.s), 1);

    /* A job queued for a slot goes back to the heap at its new time. */
    add(&h, 2, 0);
    run_for(&h, 20);
    EXPECT_INT(h.jobs[2].job.state, CM_JOB_READY);
    EXPECT_INT(cm_sched_waiting(h.s), 2);
    reschedule(&h, 2, 60);
    EXPECT_INT(h.jobs[2].job.state, CM_JOB_WAITING);
    EXPECT_INT(cm_sched_waiting(h.s), 2);
    finish(&h, &h.jobs[0], false);
    EXPECT_INT(h.jobs[2].starts, 0); /* the slot is free but it is not due yet */
    EXPECT_INT(cm_sched_running(h.s), 0);
    CU_ASSERT_TRUE(run_until(&h, job_started, 2, 2000));
    CU_ASSERT_TRUE(h.jobs[2].started_at >= h.jobs[2].added_at + 60);
    finish(&h, &h.jobs[2], false);

    /* A waiting job moved later does not run at its old time. */
    add(&h, 3, 30);
    reschedule(&h, 3, 10000);
    run_for(&h, 100);
    EXPECT_INT(h.jobs[3].starts, 0);
    EXPECT_INT(h.jobs[1].starts, 0);
    EXPECT_ORDER(&h, "0 2");
    teardown(&h);
}

static void test_detach_waiting(void)
{
    struct harness h;

    setup(&h, 4, 3, FINISH_NOW);
    add(&h, 0, 20);
    add(&h, 1, 20);
    add(&h, 2, 5);
    EXPECT_INT(cm_sched_waiting(h.s), 3);
    cm_sched_detach(h.s, &h.jobs[0].job);
    cm_sched_detach(h.s, &h.jobs[2].job); /* the heap's top */
    EXPECT_INT(h.jobs[0].job.state, CM_JOB_DETACHED);
    EXPECT_INT(h.jobs[2].job.state, CM_JOB_DETACHED);
    EXPECT_INT(cm_sched_waiting(h.s), 1);
    cm_sched_detach(h.s, &h.jobs[0].job); /* a detached job: no-op */
    EXPECT_INT(cm_sched_waiting(h.s), 1);
    CU_ASSERT_TRUE(run_until(&h, job_started, 1, 2000));
    run_for(&h, 40);
    EXPECT_ORDER(&h, "1");
    /* With the last waiting job gone the timer stops: nothing keeps the loop alive. */
    EXPECT_INT(cm_sched_waiting(h.s), 1);
    cm_sched_detach(h.s, &h.jobs[1].job);
    EXPECT_INT(cm_sched_waiting(h.s), 0);
    EXPECT_INT(uv_loop_alive(&h.loop), 0);
    /* A detached job can be added again. */
    add(&h, 0, 0);
    CU_ASSERT_TRUE(run_until(&h, job_started, 0, 2000));
    EXPECT_ORDER(&h, "1 0");
    teardown(&h);
}

static void test_detach_ready(void)
{
    struct harness h;

    setup(&h, 1, 5, HOLD);
    add(&h, 0, 0);
    add(&h, 1, 5);
    add(&h, 2, 10);
    add(&h, 3, 15);
    CU_ASSERT_TRUE(run_until(&h, job_started, 0, 2000));
    run_for(&h, 40);
    for (size_t i = 1; i < 4; i++)
        EXPECT_INT(h.jobs[i].job.state, CM_JOB_READY);
    EXPECT_INT(cm_sched_waiting(h.s), 3);
    /* Out of the FIFO's tail, then its head. */
    cm_sched_detach(h.s, &h.jobs[3].job);
    cm_sched_detach(h.s, &h.jobs[1].job);
    EXPECT_INT(h.jobs[3].job.state, CM_JOB_DETACHED);
    EXPECT_INT(h.jobs[1].job.state, CM_JOB_DETACHED);
    EXPECT_INT(cm_sched_waiting(h.s), 1);
    /* A job queued after that goes behind the one left. */
    add(&h, 4, 0);
    run_for(&h, 20);
    EXPECT_INT(h.jobs[4].job.state, CM_JOB_READY);
    EXPECT_INT(cm_sched_waiting(h.s), 2);
    h.mode = FINISH_NOW;
    finish(&h, &h.jobs[0], false);
    EXPECT_ORDER(&h, "0 2 4");
    run_for(&h, 30);
    EXPECT_ORDER(&h, "0 2 4");
    EXPECT_INT(h.jobs[1].starts, 0);
    EXPECT_INT(h.jobs[3].starts, 0);
    EXPECT_INT(cm_sched_waiting(h.s), 3); /* 0, 2 and 4 wait for their next run */
    teardown(&h);
}

static void test_detach_running(void)
{
    struct harness h;

    setup(&h, 1, 3, HOLD);
    add(&h, 0, 0);
    add(&h, 1, 5);
    add(&h, 2, 10);
    CU_ASSERT_TRUE(run_until(&h, job_started, 0, 2000));
    run_for(&h, 30);
    EXPECT_INT(h.jobs[1].job.state, CM_JOB_READY);
    /* Detaching the running job frees its slot: the next starts there and then. */
    detach(&h, &h.jobs[0]);
    EXPECT_INT(h.jobs[0].job.state, CM_JOB_DETACHED);
    EXPECT_INT(h.jobs[1].starts, 1);
    EXPECT_INT(h.jobs[1].job.state, CM_JOB_RUNNING);
    EXPECT_INT(cm_sched_running(h.s), 1);
    EXPECT_INT(cm_sched_waiting(h.s), 1);
    detach(&h, &h.jobs[1]);
    EXPECT_INT(h.jobs[2].starts, 1);
    detach(&h, &h.jobs[2]);
    EXPECT_INT(cm_sched_running(h.s), 0);
    EXPECT_INT(cm_sched_waiting(h.s), 0);
    run_for(&h, 30);
    EXPECT_ORDER(&h, "0 1 2");
    EXPECT_INT(uv_loop_alive(&h.loop), 0);
    teardown(&h);
}

/* A released job keeps running without its slot: the next due job starts there and then, the
 * released one is never started twice, and its end gives back no slot it no longer holds. */
static void test_release(void)
{
    struct harness h;

    setup(&h, 1, 3, HOLD);
    add(&h, 0, 0);
    add(&h, 1, 5);
    add(&h, 2, 10);
    CU_ASSERT_TRUE(run_until(&h, job_started, 0, 2000));
    run_for(&h, 30);
    EXPECT_INT(h.jobs[1].job.state, CM_JOB_READY);
    cm_sched_release(h.s, &h.jobs[0].job);
    EXPECT_INT(h.jobs[0].job.state, CM_JOB_RUNNING);
    EXPECT_INT(h.jobs[1].job.state, CM_JOB_RUNNING);
    EXPECT_INT(cm_sched_running(h.s), 1);
    /* Twice is once. */
    cm_sched_release(h.s, &h.jobs[0].job);
    EXPECT_INT(cm_sched_running(h.s), 1);
    EXPECT_INT(h.jobs[2].starts, 0);
    /* The released job ends: it is scheduled again, and no slot is given back. */
    finish(&h, &h.jobs[0], false);
    EXPECT_INT(h.jobs[0].job.state, CM_JOB_WAITING);
    EXPECT_INT(cm_sched_running(h.s), 1);
    EXPECT_INT(h.jobs[2].starts, 0);
    /* A released job that is detached gives back nothing either. */
    cm_sched_release(h.s, &h.jobs[1].job);
    EXPECT_INT(h.jobs[2].starts, 1);
    detach(&h, &h.jobs[1]);
    EXPECT_INT(cm_sched_running(h.s), 1);
    finish(&h, &h.jobs[2], false);
    EXPECT_INT(cm_sched_running(h.s), 0);
    /* A job not running is left alone. */
    cm_sched_release(h.s, &h.jobs[2].job);
    EXPECT_INT(h.jobs[2].job.state, CM_JOB_WAITING);
    EXPECT_INT(h.double_starts, 0);
    EXPECT_INT(h.over_cap, 0);
    EXPECT_ORDER(&h, "0 1 2");
    teardown(&h);
}

/* A run callback that detaches its own job. */
static void hook_detach_self(struct harness *h, struct tjob *t)
{
    detach(h, t);
    EXPECT_INT(t->job.state, CM_JOB_DETACHED);
}

static void test_detach_in_callback(void)
{
    struct harness h;

    setup(&h, 1, 4, HOLD);
    h.hook = hook_detach_self;
    for (size_t i = 0; i < 4; i++)
        add(&h, i, 3 * i);
    run_until(&h, started_n, 4, 2000);
    run_for(&h, 20);
    EXPECT_ORDER(&h, "0 1 2 3");
    EXPECT_INT(cm_sched_running(h.s), 0);
    EXPECT_INT(cm_sched_waiting(h.s), 0);
    teardown(&h);
}

static void test_set_concurrency(void)
{
    struct harness h;

    setup(&h, 1, 6, HOLD);
    for (size_t i = 0; i < 6; i++)
        add(&h, i, 0);
    CU_ASSERT_TRUE(run_until(&h, started_n, 1, 2000));
    run_for(&h, 10);
    EXPECT_INT(h.norder, 1);
    /* Growing the cap starts more at once. */
    h.cap = 4;
    cm_sched_set_concurrency(h.s, 4);
    EXPECT_INT(h.norder, 4);
    EXPECT_INT(cm_sched_running(h.s), 4);
    EXPECT_INT(cm_sched_waiting(h.s), 2);
    /* Shrinking stops nothing, but nothing starts until fewer than the cap run. */
    h.cap = 2;
    cm_sched_set_concurrency(h.s, 2);
    EXPECT_INT(cm_sched_running(h.s), 4);
    finish(&h, h.held[0], false);
    finish(&h, h.held[0], false);
    EXPECT_INT(h.norder, 4);
    EXPECT_INT(cm_sched_running(h.s), 2);
    finish(&h, h.held[0], false);
    EXPECT_INT(h.norder, 5);
    EXPECT_INT(cm_sched_running(h.s), 2);
    /* 0 means 1. */
    h.cap = 1;
    cm_sched_set_concurrency(h.s, 0);
    finish(&h, h.held[0], false);
    EXPECT_INT(h.norder, 5);
    finish(&h, h.held[0], false);
    EXPECT_INT(h.norder, 6);
    EXPECT_INT(cm_sched_running(h.s), 1);
    EXPECT_INT(h.max_running, 4);
    finish(&h, h.held[0], false);
    EXPECT_INT(cm_sched_running(h.s), 0);
    EXPECT_INT(cm_sched_waiting(h.s), 6);
    for (size_t i = 0; i < 6; i++)
        EXPECT_INT(h.jobs[i].starts, 1);
    teardown(&h);
}

/* A run callback that ends its job before returning: the whole due burst starts in one tick
 * under a cap of one, and every job waits for its next run. */
static void test_reentrant_done(void)
{
    struct harness h;

    setup(&h, 1, 5, FINISH_NOW);
    for (size_t i = 0; i < 5; i++)
        add(&h, i, 0);
    CU_ASSERT_TRUE(run_until(&h, started_n, 5, 2000));
    EXPECT_INT(h.max_running, 1);
    EXPECT_INT(cm_sched_running(h.s), 0);
    EXPECT_INT(cm_sched_waiting(h.s), 5);
    for (size_t i = 0; i < 5; i++) {
        EXPECT_INT(h.jobs[i].starts, 1);
        EXPECT_INT(h.jobs[i].job.state, CM_JOB_WAITING);
        EXPECT_INT(h.jobs[i].job.failures, 0);
    }
    /* The same with failed runs: each comes back after its first retry. */
    for (size_t i = 0; i < 5; i++)
        reschedule(&h, i, 0);
    h.fail_runs = true;
    CU_ASSERT_TRUE(run_until(&h, started_n, 10, 2000));
    for (size_t i = 0; i < 5; i++) {
        EXPECT_INT(h.jobs[i].job.failures, 1);
        CU_ASSERT_TRUE(h.jobs[i].job.due >= h.jobs[i].started_at + 950);
        CU_ASSERT_TRUE(h.jobs[i].job.due <= h.jobs[i].started_at + 1050);
    }
    /* The retry really comes about a second later. */
    CU_ASSERT_TRUE(run_until(&h, started_n, 15, 3000));
    for (size_t i = 10; i < 15; i++)
        CU_ASSERT_TRUE(h.jobs[h.order[i]].started_at >= h.jobs[h.order[i]].due_at_start);
    teardown(&h);
}

/* ---- Many jobs ---- */

static uint64_t rnd_state = 0x9e3779b97f4a7c15ULL;

static uint64_t rnd(void)
{
    rnd_state ^= rnd_state << 13;
    rnd_state ^= rnd_state >> 7;
    rnd_state ^= rnd_state << 17;
    return rnd_state;
}

/* 1000 jobs at random times 0..50 ms, some moved and some removed before they run: every
 * job left starts exactly once, never before it is due, and in nondecreasing due order. */
static void many(unsigned cap, enum mode mode)
{
    enum { N = 1000 };
    struct harness h;
    bool gone[N] = {false};
    size_t left = N;

    setup(&h, cap, N, mode);
    for (size_t i = 0; i < N; i++)
        add(&h, i, rnd() % 51);
    for (size_t k = 0; k < 150; k++) {
        size_t i = rnd() % N;
        reschedule(&h, i, rnd() % 51);
    }
    for (size_t k = 0; k < 100; k++) {
        size_t i = rnd() % N;
        if (!gone[i]) {
            cm_sched_detach(h.s, &h.jobs[i].job);
            gone[i] = true;
            left--;
        }
    }
    EXPECT_INT(cm_sched_waiting(h.s), left);
    if (mode == HOLD)
        start_finisher(&h, 1, true);
    CU_ASSERT_TRUE(run_until(&h, started_n, left, 20000));
    run_for(&h, 10);
    EXPECT_INT(h.norder, left);
    for (size_t k = 1; k < h.norder; k++) {
        const struct tjob *a = &h.jobs[h.order[k - 1]], *b = &h.jobs[h.order[k]];
        if (a->due_at_start > b->due_at_start) {
            char msg[128];
            snprintf(msg, sizeof(msg), "start %zu: job %d due %llu after job %d due %llu", k, b->id,
                     (unsigned long long)b->due_at_start, a->id,
                     (unsigned long long)a->due_at_start);
            CU_FAIL(msg);
            break;
        }
    }
    for (size_t i = 0; i < N; i++) {
        EXPECT_INT(h.jobs[i].starts, gone[i] ? 0 : 1);
        if (!gone[i]) {
            CU_ASSERT_TRUE(h.jobs[i].due_at_start >= h.jobs[i].added_at);
            CU_ASSERT_TRUE(h.jobs[i].due_at_start <= h.jobs[i].added_at + 50);
        }
    }
    CU_ASSERT_TRUE(h.max_running <= cap);
    if (mode == HOLD) {
        uv_timer_stop(&h.finisher);
        on_finisher(&h.finisher);
    }
    EXPECT_INT(cm_sched_running(h.s), 0);
    EXPECT_INT(cm_sched_waiting(h.s), left);
    teardown(&h);
}

static void test_many(void)
{
    many(1000, FINISH_NOW);
}

static void test_many_capped(void)
{
    many(4, HOLD);
}

/* ---- Closing ---- */

static void test_close(void)
{
    struct harness h;

    setup(&h, 1, 3, HOLD);
    add(&h, 0, 0);
    add(&h, 1, 0);
    add(&h, 2, 10000);
    CU_ASSERT_TRUE(run_until(&h, started_n, 1, 2000));
    run_for(&h, 10);
    EXPECT_INT(cm_sched_running(h.s), 1);
    EXPECT_INT(cm_sched_waiting(h.s), 2);
    /* One running, one queued, one in the heap: closing frees the scheduler all the same
     * (ASan reports the leak otherwise) and starts nothing more. */
    cm_sched_close(h.s);
    uv_close((uv_handle_t *)&h.guard, NULL);
    uv_close((uv_handle_t *)&h.finisher, NULL);
    uv_run(&h.loop, UV_RUN_DEFAULT);
    EXPECT_INT(h.norder, 1);
    CU_ASSERT(uv_loop_close(&h.loop) == 0);
    free(h.jobs);
    cm_sched_close(NULL);
}

static void test_close_empty(void)
{
    uv_loop_t loop;
    struct cm_sched *s;

    CU_ASSERT_EQUAL_FATAL(uv_loop_init(&loop), 0);
    CU_ASSERT_EQUAL_FATAL(cm_sched_new(&loop, 8, on_run, NULL, &s), 0);
    EXPECT_INT(cm_sched_running(s), 0);
    EXPECT_INT(cm_sched_waiting(s), 0);
    EXPECT_INT(uv_loop_alive(&loop), 0); /* an idle scheduler keeps nothing running */
    cm_sched_close(s);
    uv_run(&loop, UV_RUN_DEFAULT);
    CU_ASSERT(uv_loop_close(&loop) == 0);
}

static CU_TestInfo tests[] = {
    {"next delay: backoff doubles up to the interval", test_next_delay},
    {"jobs start in due order", test_due_order},
    {"the cap holds; all run", test_cap},
    {"jobs queued for a slot start in due order", test_fifo},
    {"equally due jobs all run once", test_equally_due},
    {"a job never runs twice at once", test_never_twice},
    {"done: interval with jitter within 5%, at most 30 s", test_jitter},
    {"done: failures back off", test_backoff},
    {"done: the next run comes an interval later", test_interval_real},
    {"reschedule: waiting, queued and running jobs", test_reschedule},
    {"detach: waiting jobs", test_detach_waiting},
    {"detach: jobs queued for a slot", test_detach_ready},
    {"detach: a running job frees its slot", test_detach_running},
    {"detach: from the run callback", test_detach_in_callback},
    {"set_concurrency grows and shrinks the cap", test_set_concurrency},
    {"a released job frees its slot and stays running", test_release},
    {"done from the run callback", test_reentrant_done},
    {"heap: 1000 jobs start in due order", test_many},
    {"heap: 1000 jobs under a cap of 4", test_many_capped},
    {"close with jobs in every state", test_close},
    {"close an idle scheduler", test_close_empty},
    CU_TEST_INFO_NULL,
};

int main(void)
{
    return cm_test_main("scheduler", tests, NULL, NULL);
}
