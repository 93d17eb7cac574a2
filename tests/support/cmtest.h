/* Shared test support: a CUnit runner that reports failures through the exit code, and a
 * harness for integration tests (child processes by PID, free loopback ports, a PKI made at
 * test time, running certmon and capturing its output). */
#ifndef CERTMON_CMTEST_H
#define CERTMON_CMTEST_H

#include <CUnit/CUnit.h>
#include <jansson.h>
#include <stdbool.h>
#include <sys/types.h>
#include <uv.h>

/* Registers one suite and runs it in basic mode. Returns the process exit status: non-zero
 * when any test or assertion failed (CU_basic_run_tests alone reports success). */
int cm_test_main(const char *suite, CU_TestInfo *tests, CU_InitializeFunc init,
                 CU_CleanupFunc cleanup);

/* Assertions that say what was expected and what came: "expr: want X, got Y". */
#define EXPECT_STR(got, want) cm_expect_str((got), (want), #got, __FILE__, __LINE__)
#define EXPECT_INT(got, want)                                                                      \
    cm_expect_int((long long)(got), (long long)(want), #got, __FILE__, __LINE__)

/* The same with the expression text and line given, for helpers that check on behalf of
 * their caller. */
#define expect_str(got, want, expr, line) cm_expect_str((got), (want), (expr), __FILE__, (line))
#define expect_int(got, want, expr, line)                                                          \
    cm_expect_int((long long)(got), (long long)(want), (expr), __FILE__, (line))

void cm_expect_str(const char *got, const char *want, const char *expr, const char *file,
                   unsigned line);
void cm_expect_int(long long got, long long want, const char *expr, const char *file,
                   unsigned line);

/* The exit status of `certmon check` and the status word of target t agree with want
 * ("ok", "warning", "critical", "unknown"). */
#define EXPECT_STATUS(rc, t, want) cm_expect_status((rc), (t), (want), __FILE__, __LINE__)
void cm_expect_status(int rc, json_t *t, const char *want, const char *file, unsigned line);

/* A TCP port on 127.0.0.1 that was free a moment ago. */
int cm_th_free_port(void);

/* Starts argv[0] (searched in PATH) with stdin from /dev/null and stdout/stderr to
 * /dev/null (or to log_path when not NULL). Returns the PID or -1. */
pid_t cm_th_spawn(char *const argv[], const char *log_path);

/* Waits until something accepts TCP connections on 127.0.0.1:port, at most timeout_ms.
 * Returns true when it does. */
bool cm_th_wait_port(int port, int timeout_ms);

/* Stops a child started by cm_th_spawn: SIGTERM, then SIGKILL after a second. */
void cm_th_stop(pid_t pid);

/* Runs a command to completion (at most timeout_s seconds, then it is killed), capturing
 * stdout into *out (malloc'd, NUL-terminated). Returns the exit status, or -1 when it did not
 * exit normally. *elapsed_s gets the wall time when not NULL. */
int cm_th_run(char *const argv[], char **out, int timeout_s, double *elapsed_s);

/* Runs the shell command made from fmt with /bin/sh -c (at most 60 s), capturing stdout into
 * *out (malloc'd) when out is not NULL, else dropping it. Returns the exit status as
 * cm_th_run does, or -1 when the command could not be made. */
int cm_th_sh(char **out, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Runs certmon check with args (NULL-terminated) plus --json and parses stdout.
 * Returns the parsed JSON (caller decrefs) or NULL; *exit_code gets the status. */
json_t *cm_th_check_json(int *exit_code, double *elapsed_s, ...);

/* The directory holding the PKI made by tests/integration/mkpki.sh for this run (made on
 * first use, removed at exit). */
const char *cm_th_pki_dir(void);

/* dir/name in a static rotating buffer (the last 8 stay valid): a suite's files in its own
 * temporary directory. */
const char *cm_th_path(const char *dir, const char *name);

/* The whole file at path as a NUL-terminated malloc'd string ("" when it cannot be read), or
 * NULL when out of memory. */
char *cm_th_read_text(const char *path);

/* A path inside the PKI directory, in a static rotating buffer. */
const char *cm_th_pki(const char *name);

/* Path to a helper script in tests/integration (beside mkpki.sh), in a static rotating
 * buffer. */
const char *cm_th_script(const char *name);

/* Path to the certmon binary under test. */
const char *cm_th_certmon(void);

/* Runs certmon check with args (NULL-terminated), stderr folded into stdout, capturing both
 * into *out (malloc'd). Returns the exit status, as cm_th_run. */
int cm_th_check_merged(char **out, ...);

/* Heap bytes in use, malloc's chunk overhead included (glibc's mallinfo2), for tests that
 * print what a structure costs (issue 14's memory budget); 0 under an allocator that does not
 * report it (the sanitizers'). */
size_t cm_th_heap_used(void);

/* Prints to stderr what the heap grew by since before (a cm_th_heap_used value) per each of n
 * items: "  WHAT: N heap bytes", or that it cannot be measured under this allocator. */
void cm_th_print_heap(const char *what, size_t before, size_t n);

/* ---- Helpers for the daemon's integration suites ---- */

/* Monotonic time in seconds. */
double cm_th_now(void);

/* Starts `openssl s_server` on 127.0.0.1:port with cert and key from the test PKI (and
 * inter.pem as the chain when inter), and waits until it accepts. Returns its PID or -1. */
pid_t cm_th_s_server(int port, const char *cert, const char *key, bool inter);

/* Writes a file from a format. A daemon configuration (text naming `targets`) without a
 * `metrics` group gets one on a free port, appended so that its line numbers stay as
 * written: the default 127.0.0.1:9799 may be held by another test or by anything else. */
void cm_th_write_config(const char *path, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

struct cm_config_errors;

/* Whether one of the messages of errs (a failed cm_config_load) contains want. When none does,
 * says so on stderr with the first message (table case case_no), so that the failed assertion
 * after it shows what came instead. */
bool cm_th_config_error(const struct cm_config_errors *errs, const char *want, size_t case_no);

/* The value of the first sample of Prometheus family name in body (text exposition) whose
 * labels hold both matches (substrings such as 'target="alpha"'; NULL matches anything), or
 * -1 when there is none. */
double cm_th_metric(const char *body, const char *name, const char *m1, const char *m2);

/* Scrapes http://127.0.0.1:port/metrics every 50 ms until cm_th_metric(name, m1, m2) is want
 * (want < 0: until the sample is absent), at most timeout_s. Returns the seconds it took, or -1
 * on timeout. */
double cm_th_wait_metric(int port, const char *name, const char *m1, const char *m2, double want,
                         double timeout_s);

/* Waits until the file at path contains needle, at most timeout_s. */
bool cm_th_wait_text(const char *path, const char *needle, double timeout_s);

/* Sends sig to pid and waits at most timeout_s for it to exit. Returns its exit status, or
 * -1 when it died of a signal or had to be killed. *elapsed_s gets the time when not NULL. */
int cm_th_signal_wait(pid_t pid, int sig, double timeout_s, double *elapsed_s);

/* GET http://127.0.0.1:port/path with curl (10 s at most, no proxy). Returns the body
 * (malloc'd; NULL when curl failed) and the status in *code (0 when there was none). */
char *cm_th_http_get(int port, const char *path, int *code);

/* cm_th_http_get for callers that only want a success: the body (malloc'd) when the status is
 * 200, else NULL (the body of an error freed). */
char *cm_th_http_get_ok(int port, const char *path);

/* Removes the tree at path (rm -rf); an empty path is a no-op. For suite cleanups. */
void cm_th_remove_tree(const char *path);

/* Sends stderr (where log lines go) into the file at path until cm_th_stderr_end. Returns the
 * saved descriptor to give back, or -1 (stderr unchanged). */
int cm_th_stderr_begin(const char *path);

/* Puts stderr back (saved from cm_th_stderr_begin) and returns what was written to path
 * (malloc'd; NULL when it cannot be read). */
char *cm_th_stderr_end(int saved, const char *path);
/* Runs loop (UV_RUN_ONCE, with a 20 ms guard timer so that no turn blocks past the bound)
 * until *n >= want or timeout_ms passed (scaled by CERTMON_SLOWDOWN where the suite defines
 * it: pass the scaled value). Returns whether *n reached want. */
bool cm_th_loop_until(uv_loop_t *loop, const int *n, int want, int timeout_ms);

/* ---- A real DNS server: Debian's dnsmasq (package dnsmasq-base; no service) ---- */

/* A port on 127.0.0.1 that was free for both TCP and UDP a moment ago (a DNS server listens
 * on both). */
int cm_th_free_dns_port(void);

/* Starts dnsmasq on 127.0.0.1:port (UDP and TCP) serving only the zone data in records:
 * dnsmasq option lines, one per line ("srv-host=_https._tcp.example.test,a.example.test,4433,
 * 10,5", "mx-host=example.test,mx1.example.test,10", "host-record=a.example.test,127.0.0.1",
 * "local=/example.test/" to answer NXDOMAIN for other names under a domain, "server=/x.test/
 * 127.0.0.1#PORT" to forward one domain). Nothing is read from /etc and nothing else is
 * forwarded (other names: REFUSED). Answers carry TTL ttl. The configuration goes to
 * dir/dnsmasq-PORT.conf and the query log to dir/dnsmasq-PORT.log. Runs as the calling user
 * (root stays root: no privilege drop needed on loopback). Waits until it accepts TCP on the
 * port; returns its PID (stop with cm_th_stop), or -1. Restarting on the same port with other
 * records is how a test changes the zone. */
pid_t cm_th_dnsmasq(const char *dir, int port, int ttl, const char *records);

/* ---- Lookups in certmon's JSON output ---- */

/* The value at a dotted path ("chain.0.key.bits": numeric parts index arrays), or NULL. */
json_t *cm_json_get(json_t *o, const char *path);

/* The string at a dotted path, or NULL when absent or not a string. */
const char *cm_json_str(json_t *o, const char *path);

/* The only element of a one-element array; a fatal assertion when it is not one. */
json_t *cm_json_only(json_t *arr);

/* One expected string of a JSON document: the value at path (cm_json_str), NULL for "absent
 * or not a string". */
struct cm_json_want {
    const char *path, *want;
};

/* Checks every row of wants against j, each failure naming its path. */
void cm_expect_json_strs(json_t *j, const struct cm_json_want *wants, size_t n, const char *file,
                         unsigned line);

/* EXPECT_JSON_STRS(j, {"payload.class", "cert.expired"}, {"routing_key", "K3y"}, ...): a table
 * of cm_json_want rows checked against j. */
#define EXPECT_JSON_STRS(j, ...)                                                                   \
    cm_expect_json_strs((j), (const struct cm_json_want[]){__VA_ARGS__},                           \
                        sizeof((const struct cm_json_want[]){__VA_ARGS__}) /                       \
                            sizeof(struct cm_json_want),                                           \
                        __FILE__, __LINE__)

/* The first finding of target object t with that id at that chain position (any position
 * when position < 0, any severity when severity is NULL), or NULL. */
json_t *cm_finding(json_t *t, const char *id, const char *severity, int position);

/* ---- The daemon's state ---- */

/* The state database (or JSON state file) at path as the JSON state document (`certmon state
 * export --json`: {"version", "saved_at", "targets": [{name, owner, last_probe, ..., report}]}),
 * read while a daemon may be writing it; NULL when it cannot be read (no file yet). */
json_t *cm_th_state_json(const char *path);

/* Runs `certmon state export -c conf` (what an operator runs beside the daemon): the table
 * into *out (malloc'd), returning the exit status as cm_th_run; or with --json, the document
 * parsed, NULL when the command did not exit 0 or printed no JSON (said on stderr). */
int cm_th_state_export(const char *conf, char **out);
json_t *cm_th_state_export_json(const char *conf);

/* What the sqlite3 shell prints for sql on the database at path (what an operator would run),
 * trailing newlines cut; NULL when the shell fails. Caller frees. */
char *cm_th_sqlite3(const char *path, const char *sql);

/* Runs cm_th_sqlite3 every 100 ms until it prints want, at most timeout_s. Returns whether it
 * did (else the last output is reported on stderr). */
bool cm_th_wait_sqlite3(const char *path, const char *sql, const char *want, double timeout_s);

/* ---- The scripted HTTP receiver (tests/integration/http_receiver.py) ---- */

/* Clears the proxy variables of the environment (libcurl reads them) and sets no_proxy for
 * 127.0.0.1: deliveries to loopback receivers must not go through a proxy. */
void cm_th_no_proxy(void);

/* Starts the receiver on 127.0.0.1:port, recording to log, with more arguments of its own
 * ("--responses", "429,202", ...; NULL-terminated), and waits until it listens. Returns its
 * PID or -1. */
pid_t cm_th_rx_start(int port, const char *log, ...) __attribute__((sentinel));

/* The requests recorded in log so far (one object per line), as an array (empty when there is
 * no log yet). */
json_t *cm_th_rx_requests(const char *log);

/* Waits until log holds at least want requests, at most timeout_s. Returns how many it holds. */
size_t cm_th_rx_wait(const char *log, size_t want, double timeout_s);

/* The body of requests[i] parsed as JSON, or NULL. */
json_t *cm_th_rx_body(json_t *requests, size_t i);

#endif
