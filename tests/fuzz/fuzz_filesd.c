/* libFuzzer harness: the file_sd parser (src/config/filesd.c), whose input is a discovery file
 * another system writes. The same bytes go to the JSON and the YAML reader; what is kept must
 * be what the contract promises (bounds, unique label names, counts that add up). */
#include "fuzz_util.h"

#include "certmon/base/error.h"
#include "certmon/config/filesd.h"

FZ_QUIET_INIT

static void check(const struct cm_sd_doc *doc)
{
    size_t total = 0;

    FZ_CHECK(doc->targets <= CM_SD_MAX_TARGETS);
    for (size_t i = 0; i < doc->count; i++) {
        const struct cm_sd_group *g = &doc->groups[i];
        total += g->target_count;
        FZ_CHECK(g->label_count <= CM_SD_MAX_LABELS);
        for (size_t k = 0; k < g->target_count; k++)
            FZ_CHECK(strlen(g->targets[k]) <= CM_SD_MAX_STRING);
        for (size_t k = 0; k < g->label_count; k++) {
            FZ_CHECK(strlen(g->labels[k].name) <= CM_SD_MAX_STRING);
            FZ_CHECK(strlen(g->labels[k].value) <= CM_SD_MAX_STRING);
            for (size_t j = 0; j < k; j++)
                FZ_CHECK(strcmp(g->labels[j].name, g->labels[k].name) != 0);
        }
    }
    FZ_CHECK(total == doc->targets);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const enum cm_sd_format fmts[] = {CM_SD_JSON, CM_SD_YAML};

    for (size_t f = 0; f < 2; f++) {
        struct cm_sd_doc doc;
        char err[256];
        int line = -1, rc;

        err[0] = '\0';
        rc = cm_sd_parse((const char *)data, size, fmts[f], &doc, err, sizeof(err), &line);
        FZ_CHECK(rc == 0 || rc == CM_EBADARG || rc == -ENOMEM);
        FZ_CHECK(line >= 0);
        if (rc == 0)
            check(&doc);
        else
            FZ_CHECK(doc.count == 0 && doc.groups == NULL);
        FZ_CHECK(rc != CM_EBADARG || err[0] != '\0');
        cm_sd_doc_clear(&doc);
    }
    return 0;
}
