/* The revocation PKI and its servers (cmrevoke.h). */
#include "cmrevoke.h"
#include "cmtest.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Spawns a helper script of tests/integration with python3: argv after the script's name. */
static pid_t spawn_py(const char *script, char *const args[], const char *log)
{
    char *argv[8] = {"/usr/bin/python3", (char *)cm_th_script(script)};
    size_t n = 2;

    for (size_t i = 0; args[i] && n < 7; i++)
        argv[n++] = args[i];
    argv[n] = NULL;
    return cm_th_spawn(argv, log);
}

static int start_servers(struct cm_th_revpki *p, bool forged)
{
    char cmd[1024], crl[16], ocsp[16], tarpit[16], fport[16], www[300], idx[300], inter[300],
        rsigner[300], rkey[300], fake[300], fkey[300];

    snprintf(cmd, sizeof(cmd), "sh '%s' '%s' %d %d %d %d %d", cm_th_script("mkrevoke.sh"), p->dir,
             p->crl_port, p->ocsp_port, p->down_port, p->tarpit_port, p->forged_port);
    if (system(cmd) != 0) {
        fprintf(stderr, "mkrevoke.sh failed\n");
        return -1;
    }
    /* cm_th_path's buffers rotate: every path is copied. */
    snprintf(www, sizeof(www), "%s", cm_th_path(p->dir, "www"));
    snprintf(idx, sizeof(idx), "%s", cm_th_path(p->dir, "ocsp.index"));
    snprintf(inter, sizeof(inter), "%s", cm_th_path(p->dir, "inter.pem"));
    snprintf(rsigner, sizeof(rsigner), "%s", cm_th_path(p->dir, "responder.pem"));
    snprintf(rkey, sizeof(rkey), "%s", cm_th_path(p->dir, "responder.key"));
    snprintf(fake, sizeof(fake), "%s", cm_th_path(p->dir, "fake.pem"));
    snprintf(fkey, sizeof(fkey), "%s", cm_th_path(p->dir, "fake.key"));
    snprintf(p->crl_log, sizeof(p->crl_log), "%s", cm_th_path(p->dir, "crl.log"));
    snprintf(p->ocsp_log, sizeof(p->ocsp_log), "%s", cm_th_path(p->dir, "ocsp.log"));
    snprintf(crl, sizeof(crl), "%d", p->crl_port);
    snprintf(ocsp, sizeof(ocsp), "%d", p->ocsp_port);
    snprintf(tarpit, sizeof(tarpit), "%d", p->tarpit_port);
    snprintf(fport, sizeof(fport), "%d", p->forged_port);
    p->crl_pid = spawn_py("crl_server.py", (char *[]){crl, www, p->crl_log, NULL}, NULL);
    p->tarpit_pid = spawn_py("tarpit.py", (char *[]){tarpit, NULL}, NULL);
    p->ocsp_pid = spawn_py("ocsp_responder.py", (char *[]){ocsp, idx, inter, rsigner, rkey, NULL},
                           p->ocsp_log);
    if (forged)
        p->forged_pid =
            spawn_py("ocsp_responder.py", (char *[]){fport, idx, fake, fake, fkey, NULL}, NULL);
    if (p->crl_pid < 0 || p->tarpit_pid < 0 || p->ocsp_pid < 0 || p->forged_pid < 0 ||
        !cm_th_wait_port(p->crl_port, 10000) || !cm_th_wait_port(p->tarpit_port, 10000) ||
        !cm_th_wait_port(p->ocsp_port, 10000) ||
        (forged && !cm_th_wait_port(p->forged_port, 10000))) {
        fprintf(stderr, "the CRL server, the tarpit or an OCSP responder did not start\n");
        return -1;
    }
    return 0;
}

int cm_th_revpki_start(struct cm_th_revpki *p, const char *prefix, bool forged)
{
    *p = (struct cm_th_revpki){0};
    snprintf(p->dir, sizeof(p->dir), "/tmp/%.16s-XXXXXX", prefix);
    if (!mkdtemp(p->dir)) {
        perror("mkdtemp");
        p->dir[0] = '\0';
        return -1;
    }
    p->crl_port = cm_th_free_port();
    p->ocsp_port = cm_th_free_port();
    p->down_port = cm_th_free_port(); /* nothing will listen there */
    p->tarpit_port = cm_th_free_port();
    p->forged_port = cm_th_free_port();
    if (start_servers(p, forged) == 0)
        return 0;
    cm_th_revpki_stop(p);
    return -1;
}

void cm_th_revpki_stop(struct cm_th_revpki *p)
{
    pid_t *pids[] = {&p->crl_pid, &p->ocsp_pid, &p->tarpit_pid, &p->forged_pid};

    for (size_t i = 0; i < sizeof(pids) / sizeof(pids[0]); i++) {
        if (*pids[i] > 0)
            cm_th_stop(*pids[i]);
        *pids[i] = 0;
    }
    if (p->dir[0]) {
        char *argv[] = {"rm", "-rf", p->dir, NULL}, *out = NULL;
        if (cm_th_run(argv, &out, 30, NULL) != 0)
            fprintf(stderr, "cannot remove %s\n", p->dir);
        free(out);
        p->dir[0] = '\0';
    }
}

pid_t cm_th_revpki_s_server(const struct cm_th_revpki *p, const char *cert, const char *chain,
                            int *port)
{
    char accept[64], c[400], k[400], ch[400];
    char *argv[] = {"openssl", "s_server",    "-accept", accept, "-cert",  c,   "-key",
                    k,         "-cert_chain", ch,        "-www", "-quiet", NULL};
    pid_t pid;

    *port = cm_th_free_port();
    snprintf(accept, sizeof(accept), "127.0.0.1:%d", *port);
    snprintf(c, sizeof(c), "%s", cm_th_path(p->dir, cert));
    snprintf(k, sizeof(k), "%s", cm_th_path(p->dir, "leaf.key"));
    snprintf(ch, sizeof(ch), "%s", cm_th_path(p->dir, chain));
    pid = cm_th_spawn(argv, NULL);
    if (pid < 0 || !cm_th_wait_port(*port, 10000)) {
        fprintf(stderr, "openssl s_server for %s did not start\n", cert);
        if (pid > 0)
            cm_th_stop(pid);
        return -1;
    }
    return pid;
}

json_t *cm_th_crl_requests(const struct cm_th_revpki *p, const char *path)
{
    FILE *fp = fopen(p->crl_log, "r");
    json_t *arr = json_array();
    char line[2048];

    while (fp && arr && fgets(line, sizeof(line), fp)) {
        json_t *e = json_loads(line, 0, NULL);
        const char *got = json_string_value(json_object_get(e, "path"));
        if (got && !strcmp(got, path))
            json_array_append(arr, e);
        json_decref(e);
    }
    if (fp)
        fclose(fp);
    return arr;
}

size_t cm_th_crl_gets(const struct cm_th_revpki *p, const char *path)
{
    json_t *a = cm_th_crl_requests(p, path);
    size_t n = json_array_size(a);

    json_decref(a);
    return n;
}
