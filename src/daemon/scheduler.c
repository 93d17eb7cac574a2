/* The scheduler: a binary min-heap keyed by due time, one timer armed for the earliest job,
 * and a FIFO of due jobs waiting for a slot, so that a burst of due jobs under the cap starts
 * in due order and none starves. */
#include "certmon/daemon/scheduler.h"

#include <errno.h>
#include <stdlib.h>

struct cm_sched {
    uv_loop_t *loop;
    uv_timer_t timer;
    cm_sched_run_cb run;
    void *arg;
    unsigned concurrency, running;
    struct cm_sched_job **heap;
    size_t count, cap;
    struct cm_sched_job *ready_head, *ready_tail;
    size_t ready_count;
    uint64_t rng, seq;
    bool closing, pumping;
};

static void arm(struct cm_sched *s);

static uint64_t rng_next(struct cm_sched *s)
{
    /* xorshift64*: enough to decorrelate jitter; nothing depends on its quality. */
    s->rng ^= s->rng >> 12;
    s->rng ^= s->rng << 25;
    s->rng ^= s->rng >> 27;
    return s->rng * 2685821657736338717ULL;
}

static bool before(const struct cm_sched_job *a, const struct cm_sched_job *b)
{
    return a->due < b->due || (a->due == b->due && a->seq < b->seq);
}

static void heap_swap(struct cm_sched *s, size_t a, size_t b)
{
    struct cm_sched_job *t = s->heap[a];

    s->heap[a] = s->heap[b];
    s->heap[b] = t;
    s->heap[a]->heap_index = a;
    s->heap[b]->heap_index = b;
}

static void sift_up(struct cm_sched *s, size_t i)
{
    while (i > 0 && before(s->heap[i], s->heap[(i - 1) / 2])) {
        heap_swap(s, i, (i - 1) / 2);
        i = (i - 1) / 2;
    }
}

static void sift_down(struct cm_sched *s, size_t i)
{
    for (;;) {
        size_t l = 2 * i + 1, r = l + 1, m = i;
        if (l < s->count && before(s->heap[l], s->heap[m]))
            m = l;
        if (r < s->count && before(s->heap[r], s->heap[m]))
            m = r;
        if (m == i)
            return;
        heap_swap(s, i, m);
        i = m;
    }
}

static int heap_push(struct cm_sched *s, struct cm_sched_job *job)
{
    if (s->count == s->cap) {
        size_t ncap = s->cap ? s->cap * 2 : 64;
        struct cm_sched_job **h = realloc(s->heap, ncap * sizeof(*h));
        if (!h)
            return -ENOMEM;
        s->heap = h;
        s->cap = ncap;
    }
    job->heap_index = s->count;
    s->heap[s->count++] = job;
    sift_up(s, job->heap_index);
    job->state = CM_JOB_WAITING;
    return 0;
}

static void heap_remove(struct cm_sched *s, struct cm_sched_job *job)
{
    size_t i = job->heap_index;

    s->count--;
    if (i != s->count) {
        s->heap[i] = s->heap[s->count];
        s->heap[i]->heap_index = i;
        sift_down(s, i);
        sift_up(s, i);
    }
    job->state = CM_JOB_DETACHED;
}

static void ready_push(struct cm_sched *s, struct cm_sched_job *job)
{
    job->next = NULL;
    job->state = CM_JOB_READY;
    if (s->ready_tail)
        s->ready_tail->next = job;
    else
        s->ready_head = job;
    s->ready_tail = job;
    s->ready_count++;
}

static void ready_remove(struct cm_sched *s, struct cm_sched_job *job)
{
    struct cm_sched_job **pp = &s->ready_head, *prev = NULL;

    while (*pp && *pp != job) {
        prev = *pp;
        pp = &(*pp)->next;
    }
    if (!*pp)
        return;
    *pp = job->next;
    if (s->ready_tail == job)
        s->ready_tail = prev;
    s->ready_count--;
    job->next = NULL;
    job->state = CM_JOB_DETACHED;
}

/* Starts queued jobs while slots are free. Guarded against re-entry: a run callback that
 * finishes its job at once calls back into here through cm_sched_done. */
static void pump(struct cm_sched *s)
{
    if (s->pumping || s->closing)
        return;
    s->pumping = true;
    while (s->ready_head && s->running < s->concurrency) {
        struct cm_sched_job *job = s->ready_head;
        s->ready_head = job->next;
        if (!s->ready_head)
            s->ready_tail = NULL;
        s->ready_count--;
        job->next = NULL;
        job->state = CM_JOB_RUNNING;
        job->released = false;
        s->running++;
        s->run(job, s->arg);
    }
    s->pumping = false;
}

static void on_timer(uv_timer_t *t)
{
    struct cm_sched *s = t->data;
    uint64_t now = uv_now(s->loop);

    while (s->count > 0 && s->heap[0]->due <= now) {
        struct cm_sched_job *job = s->heap[0];
        heap_remove(s, job);
        ready_push(s, job);
    }
    pump(s);
    arm(s);
}

static void arm(struct cm_sched *s)
{
    uint64_t now;

    if (s->closing)
        return;
    if (s->count == 0) {
        uv_timer_stop(&s->timer);
        return;
    }
    now = uv_now(s->loop);
    uv_timer_start(&s->timer, on_timer, s->heap[0]->due > now ? s->heap[0]->due - now : 0, 0);
}

int cm_sched_new(uv_loop_t *loop, unsigned concurrency, cm_sched_run_cb run, void *arg,
                 struct cm_sched **out)
{
    struct cm_sched *s = calloc(1, sizeof(*s));

    if (!s)
        return -ENOMEM;
    s->loop = loop;
    s->run = run;
    s->arg = arg;
    s->concurrency = concurrency ? concurrency : 1;
    s->rng = uv_hrtime() | 1;
    uv_timer_init(loop, &s->timer);
    s->timer.data = s;
    *out = s;
    return 0;
}

int cm_sched_add(struct cm_sched *s, struct cm_sched_job *job, uint64_t delay_ms)
{
    int rc;

    job->due = uv_now(s->loop) + delay_ms;
    job->seq = s->seq++;
    job->next = NULL;
    if ((rc = heap_push(s, job)) < 0)
        return rc;
    if (job->heap_index == 0)
        arm(s);
    return 0;
}

void cm_sched_reschedule(struct cm_sched *s, struct cm_sched_job *job, uint64_t delay_ms)
{
    if (job->state == CM_JOB_WAITING) {
        heap_remove(s, job);
    } else if (job->state == CM_JOB_READY) {
        ready_remove(s, job);
    } else {
        return;
    }
    cm_sched_add(s, job, delay_ms); /* the heap had room for it a moment ago */
}

uint64_t cm_sched_next_delay(const struct cm_sched_job *job, bool failed)
{
    uint64_t d;

    if (!failed || job->failures == 0)
        return job->interval_ms;
    d = job->retry_min_ms;
    for (unsigned i = 1; i < job->failures && d < job->interval_ms; i++)
        d *= 2;
    return d < job->interval_ms ? d : job->interval_ms;
}

void cm_sched_done(struct cm_sched *s, struct cm_sched_job *job, bool failed)
{
    uint64_t d, j;

    if (job->state != CM_JOB_RUNNING)
        return;
    if (!job->released)
        s->running--;
    job->released = false;
    job->state = CM_JOB_DETACHED;
    job->failures = failed ? job->failures + 1 : 0;
    d = cm_sched_next_delay(job, failed);
    j = d / 20 < 30000 ? d / 20 : 30000;
    if (j > 0)
        d = d - j + rng_next(s) % (2 * j + 1);
    if (!s->closing)
        cm_sched_add(s, job, d);
    pump(s);
}

void cm_sched_release(struct cm_sched *s, struct cm_sched_job *job)
{
    if (job->state != CM_JOB_RUNNING || job->released)
        return;
    job->released = true;
    s->running--;
    pump(s);
}

void cm_sched_detach(struct cm_sched *s, struct cm_sched_job *job)
{
    switch (job->state) {
    case CM_JOB_WAITING:
        heap_remove(s, job);
        arm(s);
        break;
    case CM_JOB_READY:
        ready_remove(s, job);
        break;
    case CM_JOB_RUNNING:
        job->state = CM_JOB_DETACHED;
        if (!job->released)
            s->running--;
        job->released = false;
        pump(s);
        break;
    default:
        break;
    }
}

void cm_sched_set_concurrency(struct cm_sched *s, unsigned concurrency)
{
    s->concurrency = concurrency ? concurrency : 1;
    pump(s);
}

unsigned cm_sched_running(const struct cm_sched *s)
{
    return s->running;
}

size_t cm_sched_waiting(const struct cm_sched *s)
{
    return s->count + s->ready_count;
}

static void on_closed(uv_handle_t *h)
{
    struct cm_sched *s = h->data;

    free(s->heap);
    free(s);
}

void cm_sched_close(struct cm_sched *s)
{
    if (!s)
        return;
    s->closing = true;
    uv_timer_stop(&s->timer);
    uv_close((uv_handle_t *)&s->timer, on_closed);
}
