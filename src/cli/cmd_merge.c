#include "cli.h"

#include "base/base.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int run(int argc, char **argv);

const cli_command cmd_merge = {
    "merge", "join the CSVs of sharded runs (fit-scales --shard, eval per_image.csv)",
    "usage: metricdepth merge -o ALL.csv PART.csv...\n\n"
    "Concatenates CSV files that share one header line, in the order given (give\n"
    "the shards in K order to get the unsharded file), writing the header once.\n"
    "A file whose header differs is an error naming it; nothing is written then.\n"
    "predict needs no merge: its shards write whole sets into one folder (or into\n"
    "folders you copy together).\n\n"
    "options:\n"
    "  -o, --output FILE    the merged CSV (written atomically)\n"
    "  -h, --help           this text\n\n"
    "example (a Slurm array of 8 jobs, then one merge):\n"
    "  sbatch --array=1-8 --wrap 'metricdepth fit-scales --data pairs.txt \\\n"
    "      --shard $SLURM_ARRAY_TASK_ID/8 --cache cache -o part-$SLURM_ARRAY_TASK_ID.csv'\n"
    "  metricdepth merge -o scales.csv part-{1..8}.csv\n",
    run};

static int run(int argc, char **argv)
{
    const char *out_s = NULL;
    cli_option options[] = {{"output", 'o', true, &out_s, NULL}, {NULL, 0, false, NULL, NULL}};
    char **pos = calloc((size_t)argc + 1, sizeof *pos);
    int npos = 0;
    int rc = cli_parse(&cmd_merge, argc, argv, options, pos, &npos);
    if (rc == 0 && (!out_s || npos == 0))
        rc = cli_usage_error(&cmd_merge, "give -o ALL.csv and at least one CSV to merge");
    if (rc != 0) {
        free(pos);
        return rc < 0 ? CLI_EXIT_OK : rc;
    }
    md_error err = {0};
    char *all = NULL, *header = NULL;
    size_t len = 0, rows = 0;
    int status = CLI_EXIT_OK;
    for (int i = 0; i < npos && status == CLI_EXIT_OK; i++) {
        if (strcmp(pos[i], out_s) == 0) {
            status = cli_usage_error(&cmd_merge, "%s is both an input and the output", out_s);
            break;
        }
        uint8_t *data;
        size_t size;
        if (md_read_file(pos[i], (size_t)1 << 32, &data, &size, &err) != MD_OK) {
            status = cli_report(&err);
            break;
        }
        char *text = (char *)data;
        char *nl = memchr(text, '\n', size);
        size_t hlen = nl ? (size_t)(nl - text) + 1 : size;
        if (size == 0 || memchr(text, '\0', size)) {
            fprintf(stderr, "metricdepth: error: %s: not a CSV file\n", pos[i]);
            status = CLI_EXIT_FAILURE;
        } else if (!header) {
            header = malloc(hlen + 1);
            if (header) {
                memcpy(header, text, hlen);
                header[hlen] = '\0';
            }
        } else if (strlen(header) != hlen || memcmp(header, text, hlen) != 0) {
            fprintf(stderr, "metricdepth: error: %s: its header differs from %s's\n", pos[i],
                    pos[0]);
            status = CLI_EXIT_FAILURE;
        }
        if (status == CLI_EXIT_OK) {
            size_t from = i == 0 ? 0 : hlen, n = size - from;
            char *grown = realloc(all, len + n + 2);
            if (grown)
                all = grown; /* ours now, freed below whatever happens next */
            if (!grown || !header) {
                fprintf(stderr, "metricdepth: error: out of memory\n");
                status = CLI_EXIT_FAILURE;
            } else {
                memcpy(all + len, text + from, n);
                len += n;
                if (len && all[len - 1] != '\n')
                    all[len++] = '\n';
                for (size_t k = hlen; k < size; k++)
                    rows += text[k] == '\n';
                if (size > hlen && text[size - 1] != '\n')
                    rows++;
            }
        }
        free(data);
    }
    if (status == CLI_EXIT_OK && md_file_write_atomic(out_s, all, len, &err) != MD_OK)
        status = cli_report(&err);
    if (status == CLI_EXIT_OK)
        fprintf(stderr, "wrote %zu rows from %d files to %s\n", rows, npos, out_s);
    free(all);
    free(header);
    free(pos);
    return status;
}
