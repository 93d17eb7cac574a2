/* libFuzzer harness: the ACME Renewal Information parsers (src/probe/ari.c): a renewalInfo answer
 * (cm_ari_parse) and an ACME directory (cm_ari_directory_parse), both from the CA's server.
 * The same bytes go to both; what is kept must be what the contracts promise. */
#include "fuzz_util.h"

#include "certmon/probe/ari.h"
#include "certmon/base/error.h"

#include <strings.h>

FZ_QUIET_INIT

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct cm_ari a = {0}, *copy;
    char err[256], *url = NULL;
    int rc;

    err[0] = '\0';
    a.retry_after = -1;
    rc = cm_ari_parse((const char *)data, size, &a, err, sizeof(err));
    FZ_CHECK(rc == 0 || rc == CM_EBADARG || rc == -ENOMEM);
    FZ_CHECK(rc != CM_EBADARG || (err[0] != '\0' && !a.has_window));
    if (rc == 0) {
        FZ_CHECK(a.has_window && a.window_start <= a.window_end);
        if ((copy = cm_ari_copy(&a))) {
            FZ_CHECK(copy->window_start == a.window_start && copy->window_end == a.window_end);
            FZ_CHECK(!a.explanation_url || !strcmp(copy->explanation_url, a.explanation_url));
            cm_ari_free(copy);
        }
    }
    /* Parsing again into the same record replaces what the first parse kept. */
    (void)cm_ari_parse((const char *)data, size, &a, err, sizeof(err));
    free(a.explanation_url);

    err[0] = '\0';
    rc = cm_ari_directory_parse((const char *)data, size, &url, err, sizeof(err));
    FZ_CHECK(rc == 0 || rc == CM_EBADARG || rc == -ENOMEM);
    FZ_CHECK(rc == 0 ? url != NULL : url == NULL);
    FZ_CHECK(rc != CM_EBADARG || err[0] != '\0');
    if (rc == 0) {
        FZ_CHECK(!strncasecmp(url, "http://", 7) || !strncasecmp(url, "https://", 8));
        FZ_CHECK(!strpbrk(url, "\r\n "));
    }
    free(url);
    return 0;
}
