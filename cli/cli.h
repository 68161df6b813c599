/* The mutualis command line client: the contract shared by its files.
 *
 * Reading order: main.c (global flags, dispatch table), args.c (flag tables and their
 * parser), api.c (one request to mutualisd, problem+json errors), http.c (the only file
 * that sees libcurl), query.c (query strings), output.c (tables, fields, JSON), resource.c
 * (lists, objects, deletions), then one cmd_*.c file per resource. A command is a row of a
 * table: its name, its flags, its positional arguments and a run function; the parser
 * checks every argument before any request is sent. */
#ifndef MU_CLI_H
#define MU_CLI_H

#include <cjson/cJSON.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "mutualis/util.h"

/* Exit statuses. */
enum mu_cli_exit {
    MU_CLI_EXIT_OK = 0,
    MU_CLI_EXIT_FAIL = 1,   /* the server refused, or could not be reached */
    MU_CLI_EXIT_USAGE = 2,  /* bad command line: nothing was sent */
    MU_CLI_EXIT_BROKEN = 3, /* audit verify: the chain is broken */
};

#define MU_CLI_DEFAULT_URL      "https://127.0.0.1:8443"
#define MU_CLI_ANSWER_MAX       ((size_t)64 << 20)  /* answers larger than this are refused */
#define MU_CLI_IMPORT_FILE_MAX  ((size_t)256 << 20) /* epci.json / communes.json */
#define MU_CLI_TIMEOUT_S        60L
#define MU_CLI_IMPORT_TIMEOUT_S 300L
#define MU_CLI_UNLIMITED        (-1) /* MU_CLI_OPT_LIMIT: the value "unlimited" */

/* Global settings, from the environment then the global flags. Strings are borrowed from
 * argv or the environment. */
struct mu_cli {
    const char *url;
    const char *token; /* NULL: no Authorization header */
    const char *ca;    /* PEM file; NULL: system trust */
    bool json;         /* print the raw answer as pretty JSON */
    bool help;         /* -h/--help was given: print usage and stop */
    const char *where; /* "mutualis tenant create", for messages */
};

/* ---- args.c: flag tables and their parser --------------------------------------------- */

enum mu_cli_opt_type {
    MU_CLI_OPT_FLAG,   /* no value */
    MU_CLI_OPT_STR,    /* any non-empty text */
    MU_CLI_OPT_ID,     /* a resource id: integer >= 1 */
    MU_CLI_OPT_INT,    /* integer in [min, max] */
    MU_CLI_OPT_CHOICE, /* one of choices (NULL-terminated) */
    MU_CLI_OPT_TIME,   /* RFC 3339 UTC time */
    MU_CLI_OPT_LIST,   /* non-empty text, may be repeated */
    MU_CLI_OPT_IDENT,  /* identifier: [a-z0-9][a-z0-9._-]{0,62} (mu_ident_valid) */
    MU_CLI_OPT_LABEL,  /* "key=value", both identifiers; may be repeated */
    MU_CLI_OPT_LIMIT,  /* integer in [min, max], or "unlimited" (num MU_CLI_UNLIMITED) */
};

struct mu_cli_opt {
    const char *name; /* "--parent" */
    enum mu_cli_opt_type type;
    const char *metavar; /* "ID", shown in help; NULL for flags */
    const char *help;
    bool required;
    const char *const *choices; /* MU_CLI_OPT_CHOICE */
    int64_t min, max;           /* MU_CLI_OPT_INT, MU_CLI_OPT_LIMIT */
};

struct mu_cli_val {
    bool set;
    const char *str;   /* the text as given (every type but FLAG) */
    int64_t num;       /* ID, INT, LIMIT */
    const char **list; /* LIST, LABEL: every value, in order */
    size_t nlist;
};

/* A parsed command line: values parallel to the opts table, then positional arguments. */
struct mu_cli_args {
    const struct mu_cli_opt *opts;
    size_t nopts;
    struct mu_cli_val *vals;
    const char **pos;
    size_t npos;
};

/* Parses argv[0..argc) (the words after the command name) against opts; the global flags
 * (--url, --token, --ca, --json, -h/--help) are accepted anywhere and written to cli.
 * "--flag value" and "--flag=value"; "--" ends the flags; other words are positional
 * arguments (the caller checks their number). Checks types, choices, ranges, required and
 * repeated flags. Returns 0 and fills ret (free with mu_cli_args_free), or -1 with a one-line
 * message in msg. With -h/--help anywhere, only sets cli->help and returns 0 with an empty
 * ret. Strings stay borrowed from argv. */
int mu_cli_args_parse(const struct mu_cli_opt *opts, size_t nopts, int argc, char **argv,
                      struct mu_cli *cli, struct mu_cli_args *ret, char *msg, size_t msglen);
void mu_cli_args_free(struct mu_cli_args *a);
/* The value of a flag declared in the table (aborts on an undeclared name: a bug). */
const struct mu_cli_val *mu_cli_arg(const struct mu_cli_args *a, const char *name);
/* Convenience: text of a set flag or NULL; whether a flag is set. */
const char *mu_cli_arg_str(const struct mu_cli_args *a, const char *name);
bool mu_cli_arg_set(const struct mu_cli_args *a, const char *name);
/* Parses a resource id (integer >= 1). 0, or -1 with msg "what must be ...". */
int mu_cli_parse_id(const char *s, const char *what, int64_t *ret, char *msg, size_t msglen);
/* The positional ID of a command (the parser has counted it): 0 and *ret, or a usage error
 * naming what ("the node ID") and its exit status. */
int mu_cli_pos_id(const struct mu_cli *cli, const struct mu_cli_args *a, const char *what,
                  int64_t *ret);
/* Splits "key=value" where both sides are identifiers (mu_ident_valid); the key is copied
 * to ret_key, *ret_value points into s. 0 or -1. */
int mu_cli_label_split(const char *s, char ret_key[64], const char **ret_value);
/* The labels of a MU_CLI_OPT_LABEL flag as a JSON object {"key": "value"}; a key given twice
 * or more than max labels is refused. 0 and *ret (caller frees), or -1 with msg. */
int mu_cli_labels_object(const struct mu_cli_val *v, size_t max, cJSON **ret, char *msg,
                         size_t msglen);
/* Appends the options part of a usage text for opts (one line per flag) to out. */
void mu_cli_args_help(struct mu_buf *out, const struct mu_cli_opt *opts, size_t nopts);
/* Help lines of the global flags. */
void mu_cli_args_help_global(struct mu_buf *out);
/* Prints "mutualis tenant create: msg (try 'mutualis tenant create --help')" on stderr;
 * returns MU_CLI_EXIT_USAGE. */
int mu_cli_usage_error(const struct mu_cli *cli, const char *fmt, ...) MU_PRINTF(2, 3);

/* ---- commands ------------------------------------------------------------------------- */

struct mu_cli_cmd {
    const char *name;     /* "create" (or "health" for a top-level command) */
    const char *synopsis; /* positional part for help: "ID", or NULL */
    const char *summary;  /* one line */
    int npos;             /* exact number of positional arguments */
    const struct mu_cli_opt *opts;
    size_t nopts;
    /* Runs after a clean parse; returns an exit status (enum mu_cli_exit). */
    int (*run)(struct mu_cli *cli, const struct mu_cli_args *a);
};

struct mu_cli_group {
    const char *name; /* "tenant" */
    const char *summary;
    const struct mu_cli_cmd *cmds;
    size_t ncmds;
};

extern const struct mu_cli_group mu_cli_group_tenant;
extern const struct mu_cli_group mu_cli_group_user;
extern const struct mu_cli_group mu_cli_group_token;
extern const struct mu_cli_group mu_cli_group_audit;
extern const struct mu_cli_group mu_cli_group_node;
extern const struct mu_cli_group mu_cli_group_node_enroll; /* cmd_enroll.c: "node enroll" */
extern const struct mu_cli_group mu_cli_group_flavor;
extern const struct mu_cli_group mu_cli_group_image;
extern const struct mu_cli_group mu_cli_group_affinity; /* "group": anti-affinity groups */
extern const struct mu_cli_group mu_cli_group_vm;
extern const struct mu_cli_group mu_cli_group_op;
extern const struct mu_cli_group mu_cli_group_quota;
extern const struct mu_cli_cmd mu_cli_cmd_health;
extern const struct mu_cli_cmd mu_cli_cmd_whoami;

/* cmd_audit.c: parses "ID:MAC" (id >= 1, MAC even-length hex up to 128 digits); *ret_mac
 * points into s. 0 or -1. */
int mu_cli_parse_head(const char *s, int64_t *ret_id, const char **ret_mac);

/* cmd_node.c: adds to a node object (as answered by the server) the display members of
 * its table row and field list: "_virt", "_cpus", "_memory" (GiB), "_disk" ("-" until the
 * capacity has been read), "_reserved", "_allocated" ("6 vCPU, 12 GiB, 120 GiB"), "_labels"
 * ("site=a, zone=b"). */
void mu_cli_node_cells(cJSON *node);

/* cmd_catalog.c (the CLI's only GnuTLS user): SHA-256 of the rest of f, read in chunks,
 * as 64 lower-case hex digits, and the number of bytes read. 0, or -1 with errno set. */
int mu_cli_sha256_file(FILE *f, char ret_hex[65], int64_t *ret_size);
/* Checks the first bytes of an image file (n of them, up to 16) against its declared
 * format, as the server will: NULL if they fit, or why not (a static message). */
const char *mu_cli_image_header_problem(const unsigned char *hdr, size_t n, const char *format);

/* cmd_vm.c: the rows of the quota table from a GET /v1/tenants/{id}/quota answer (levels,
 * root first): objects of display strings "level", "tenant", "vcpus" ("6/8"), "ram"
 * (GiB, "12/unlimited"), "disk", "vms", "from". NULL if the answer has another shape. */
cJSON *mu_cli_quota_rows(const cJSON *answer);
/* Where an operation stands, for people: "running, step define, attempt 2, last error: …"
 * (step, attempt and error only when there are some). Caller frees. */
char *mu_cli_op_progress(const cJSON *op);
/* Whether an operation state is final: "succeeded" or "failed". */
bool mu_cli_op_finished(const char *state);

/* ---- api.c: one request to mutualisd ---------------------------------------------------- */

/* Sends method path (path includes "/v1/..." and any query) with an optional body (sent
 * verbatim as JSON; NULL for none), waits at most timeout_s seconds. On a 2xx answer returns
 * MU_CLI_EXIT_OK and *ret_json (NULL for an empty answer such as 204; the caller frees it).
 * Otherwise prints the one error line on stderr and returns MU_CLI_EXIT_FAIL. */
int mu_cli_api_raw(const struct mu_cli *cli, const char *method, const char *path, const char *body,
                   size_t body_len, long timeout_s, cJSON **ret_json);
/* Same with a body streamed from a file (Content-Type: application/octet-stream), without a
 * time limit as long as it moves (see mu_cli_http_send_file). */
struct mu_cli_http_file;
int mu_cli_api_send_file(const struct mu_cli *cli, const char *method, const char *path,
                         const struct mu_cli_http_file *file, cJSON **ret_json);
/* Same with a cJSON body (borrowed; NULL for none) and the default timeout. */
int mu_cli_api(const struct mu_cli *cli, const char *method, const char *path, const cJSON *body,
               cJSON **ret_json);
/* The error line for a non-2xx answer, without the "mutualis: " prefix: the problem's
 * detail (or title, or the HTTP reason) then "(HTTP 404, request ID)". Pure; caller frees. */
char *mu_cli_problem_line(long status, const char *body, size_t len, const char *request_id);
/* Prints "mutualis: msg" on stderr; returns MU_CLI_EXIT_FAIL. */
int mu_cli_fail(const char *fmt, ...) MU_PRINTF(1, 2);
/* Strict parse of a JSON text (mu_json_parse); NULL with a message in msg naming origin. */
cJSON *mu_cli_json_parse(const char *buf, size_t len, const char *origin, char *msg, size_t msglen);

/* ---- http.c: the transport (libcurl) ------------------------------------------------- */

struct mu_cli_http_resp {
    long status;
    char *body; /* NUL-terminated; len excludes the NUL */
    size_t len;
    char request_id[128]; /* X-Request-Id, or "" */
};

void mu_cli_http_init(void);
void mu_cli_http_cleanup(void);
/* One HTTPS exchange. Returns 0 with ret filled (any status), or -1 with a one-line
 * reason and hint in msg (connection refused, TLS verification, timeout, answer too big). */
int mu_cli_http_do(const struct mu_cli *cli, const char *method, const char *path, const char *body,
                   size_t body_len, long timeout_s, struct mu_cli_http_resp *ret, char *msg,
                   size_t msglen);
/* A body read from a file as it is sent, never held in memory. */
struct mu_cli_http_file {
    FILE *f;          /* read from its current position (borrowed) */
    int64_t size;     /* exactly this many bytes are sent (Content-Length) */
    const char *name; /* the file's name, for messages */
    bool progress;    /* a progress line on stderr */
};
/* One exchange whose body is file, sent with "Expect: 100-continue" so that a refusal
 * (authentication, size) comes before the bytes. No overall time limit: fails when the
 * transfer stalls. Same results as mu_cli_http_do; a file that cannot be read or ends early
 * is reported in msg. */
int mu_cli_http_send_file(const struct mu_cli *cli, const char *method, const char *path,
                          const struct mu_cli_http_file *file, struct mu_cli_http_resp *ret,
                          char *msg, size_t msglen);
void mu_cli_http_resp_free(struct mu_cli_http_resp *r);

/* ---- query.c: query strings ------------------------------------------------------------ */

/* Appends "?key=value" or "&key=value" to b, percent-encoding value (RFC 3986 unreserved
 * characters kept). */
void mu_cli_query_add(struct mu_buf *b, const char *key, const char *value);
void mu_cli_query_add_i64(struct mu_buf *b, const char *key, int64_t value);

/* ---- output.c: tables, fields, JSON ---------------------------------------------------- */

struct mu_cli_col {
    const char *header; /* "NAME" in tables, "name" in field lists */
    const char *key;    /* member of the object; "a.b" reaches into a nested object */
    size_t maxw;        /* cut longer cells with "…" (0: no limit) */
};

/* A size in MiB as GiB for people: "64", "1.5", "0.25" (at most two decimals). Caller frees. */
char *mu_cli_gib_text(int64_t mib);
/* Labels for people: an object {"site": "a"} or an array ["site=a"] as "site=a, zone=b";
 * "-" when empty or absent. Caller frees. */
char *mu_cli_labels_text(const cJSON *labels);
/* Display width of UTF-8 text in terminal columns (combining marks 0, East Asian wide 2). */
size_t mu_cli_utf8_width(const char *s);
/* Text of a JSON value for a cell: null/absent "-", booleans "yes"/"no", integers without
 * a fraction, strings with control characters replaced by '?'. Caller frees. */
char *mu_cli_cell_text(const cJSON *v);
/* Renders items (an array of objects) as an aligned table with a header line into out. */
void mu_cli_table_render(struct mu_buf *out, const struct mu_cli_col *cols, size_t ncols,
                         const cJSON *items);
/* Renders one object as "label:  value" lines with aligned values into out. */
void mu_cli_fields_render(struct mu_buf *out, const struct mu_cli_col *cols, size_t ncols,
                          const cJSON *obj);
/* Pretty JSON (two-space indentation, key order kept) with a final newline into out. */
void mu_cli_json_render(struct mu_buf *out, const cJSON *node);
/* The same three, to stdout. */
void mu_cli_print_table(const struct mu_cli_col *cols, size_t ncols, const cJSON *items);
void mu_cli_print_fields(const struct mu_cli_col *cols, size_t ncols, const cJSON *obj);
void mu_cli_print_json(const cJSON *node);

/* ---- resource.c: the shapes of answers --------------------------------------------------- */

/* The flags every list command declares (mu_cli_list reads them). */
/* clang-format off */
#define MU_CLI_LIST_OPTS                                                                           \
    {"--limit", MU_CLI_OPT_INT, "N", "items per page (1..1000, server default 100)", false, NULL,  \
     1, 1000},                                                                                     \
    {"--after", MU_CLI_OPT_ID, "ID", "start after this id", false, NULL, 0, 0},                    \
    {"--all", MU_CLI_OPT_FLAG, NULL, "follow the pages to the end", false, NULL, 0, 0}
/* clang-format on */

/* GETs base (a path with its filters as a query string, without limit/after), applying
 * --limit and --after from a, and prints the items (table, or JSON with --json). With --all,
 * follows next_after to the end and prints every item at once ({"items", "next_after"} in
 * JSON); otherwise a non-null next_after gives a hint on stderr. what names the items in
 * messages ("tenants"). Returns an exit status. */
int mu_cli_list(const struct mu_cli *cli, const char *base, const struct mu_cli_args *a,
                const char *what, const struct mu_cli_col *cols, size_t ncols);
/* Sends method path with body (borrowed, NULL for none), expects one object and prints it
 * as fields (or JSON). Returns an exit status. */
int mu_cli_object(const struct mu_cli *cli, const char *method, const char *path, const cJSON *body,
                  const struct mu_cli_col *cols, size_t ncols);
/* Sends method path with body (borrowed, NULL for none) and expects one JSON object:
 * MU_CLI_EXIT_OK and *ret (caller frees), or the error printed and its exit status. */
int mu_cli_fetch_object(const struct mu_cli *cli, const char *method, const char *path,
                        const cJSON *body, cJSON **ret);
/* GETs path, a list the server answers whole ({"items", "next_after": null}), and prints its
 * items: a table (after decorate(item) on each, if not NULL) or the answer with --json. */
int mu_cli_list_whole(const struct mu_cli *cli, const char *path, const char *what,
                      const struct mu_cli_col *cols, size_t ncols, void (*decorate)(cJSON *item));
/* Sends DELETE path and prints done ("deleted tenant 12"), nothing with --json. */
int mu_cli_delete(const struct mu_cli *cli, const char *path, const char *done);

#endif
