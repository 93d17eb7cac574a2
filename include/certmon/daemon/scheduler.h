/* When each target runs: a min-heap of due times on the loop behind one uv_timer, a global
 * cap on jobs in flight, and a FIFO of jobs that are due but wait for a free slot. A job is
 * either waiting (in the heap or the FIFO), running, or detached; it never runs twice at
 * once. The scheduler decides when; what a job does is the caller's business. */
#ifndef CERTMON_SCHEDULER_H
#define CERTMON_SCHEDULER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

/* Embedded in the caller's per-target object; the scheduler never allocates one. */
struct cm_sched_job {
    uint64_t due;             /* loop time (ms) at which it is due */
    uint64_t seq;             /* order of insertion: equally due jobs start in this order */
    uint64_t interval_ms;     /* between the end of one run and the next start */
    uint64_t retry_min_ms;    /* first retry after a failure; doubles, at most interval_ms */
    unsigned failures;        /* consecutive failed runs */
    size_t heap_index;        /* position in the heap while waiting there */
    struct cm_sched_job *next; /* FIFO link while due and waiting for a slot */
    bool released;             /* running, but its slot given back (cm_sched_release) */
    enum { CM_JOB_DETACHED = 0, CM_JOB_WAITING, CM_JOB_READY, CM_JOB_RUNNING } state;
};

struct cm_sched;

/* Called when a job starts. The callee must later call cm_sched_done (or cm_sched_detach)
 * for it exactly once, from any later point (it may do so before returning). */
typedef void (*cm_sched_run_cb)(struct cm_sched_job *job, void *arg);

/* Creates a scheduler on loop that runs at most concurrency jobs at once. Returns 0 or
 * -ENOMEM. */
int cm_sched_new(uv_loop_t *loop, unsigned concurrency, cm_sched_run_cb run, void *arg,
                 struct cm_sched **out);

/* Adds a detached job (interval_ms and retry_min_ms set), due delay_ms from now. Returns 0 or
 * -ENOMEM. */
int cm_sched_add(struct cm_sched *s, struct cm_sched_job *job, uint64_t delay_ms);

/* Moves a waiting job to delay_ms from now (a running job is left alone). */
void cm_sched_reschedule(struct cm_sched *s, struct cm_sched_job *job, uint64_t delay_ms);

/* Ends a run. failed: the next run comes after the retry backoff
 * (retry_min_ms * 2^(failures-1), at most interval_ms) rather than the interval. Both get a
 * jitter of up to +-5% (at most 30 s), so that targets started together drift apart. */
void cm_sched_done(struct cm_sched *s, struct cm_sched_job *job, bool failed);

/* Gives back the slot of a running job whose remaining work only waits on others (revocation
 * fetches with their own budget): the next due job may start now. The job stays running (it
 * is not started again) until cm_sched_done or cm_sched_detach. A job not running, or
 * released already, is left alone. */
void cm_sched_release(struct cm_sched *s, struct cm_sched_job *job);

/* Removes a job wherever it is. A running job frees its slot; it must not be passed to
 * cm_sched_done afterwards. */
void cm_sched_detach(struct cm_sched *s, struct cm_sched_job *job);

/* Changes the cap; more jobs start at once when it grew. */
void cm_sched_set_concurrency(struct cm_sched *s, unsigned concurrency);

/* Jobs running now, and jobs waiting (in the heap or due and queued). */
unsigned cm_sched_running(const struct cm_sched *s);
size_t cm_sched_waiting(const struct cm_sched *s);

/* Stops starting jobs (running ones are not touched) and closes the timer. The scheduler is
 * freed once the timer's close callback has run; jobs must not be passed to it after this
 * call. NULL is a no-op. */
void cm_sched_close(struct cm_sched *s);

/* The delay before a job's next run: interval (failed false) or backoff, without jitter.
 * Pure; exposed for tests. */
uint64_t cm_sched_next_delay(const struct cm_sched_job *job, bool failed);

#endif
