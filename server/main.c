/*
 * spell-server: the platform API of DESIGN.md §3, and its operator
 * commands.
 *
 *   spell-server [serve] [flags]              run the server
 *   spell-server users add LOGIN [--role R]   create a user, print a key
 *   spell-server spells import FILE.json...   import spell manifests
 *   spell-server ledger verify                check the ledger's chain
 *   spell-server billing run-monthly [--period YYYY-MM]   invoice a closed month
 *
 * Configuration comes from flags, each with an environment variable; a
 * flag wins over its variable, and a variable over the built-in default
 * (docs/operations.md lists them all).  Numbers are parsed strictly: a
 * value that is not a whole number in range is a usage error naming the
 * flag or variable, exit status 2.
 *
 * `serve` brings the parts up in the order of app.h, starts the HTTP
 * daemon, prints "listening on http://HOST:PORT" on stderr once requests
 * are answered (and, with --port-file, writes the bound port to a file),
 * then waits for SIGTERM or SIGINT on a signalfd: the signals are blocked
 * in every thread, so no work happens in a signal handler.  Shutdown is
 * graceful: httpd_stop() lets in-flight requests finish and closes the SSE
 * streams, then the executor stops (running jobs stay durable in the
 * store and are recovered at the next start) and the store closes.
 *
 * Logs go to stderr, one line each, and never carry a key, a token or a
 * request body.  The API key printed by `users add` goes to stdout only.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "spell/clock.h"
#include "spell/crypto.h"
#include "spell/errors.h"
#include "spell/version.h"

#include "app.h"
#include "httpd.h"
#include "routes.h"
#include "server.h"
#include "store.h"

#include "auth.h"
#include "api.h"
#include "billing.h"

/* Bytes of a path, a listen address or a URL taken from outside. */
#define MAIN_PATH_MAX 4096
#define MAIN_HOST_MAX 64
#define MAIN_URL_MAX 2048

enum command {
    CMD_SERVE = 1u << 0,
    CMD_USERS_ADD = 1u << 1,
    CMD_SPELLS_IMPORT = 1u << 2,
    CMD_LEDGER_VERIFY = 1u << 3,
    CMD_BILLING_RUN = 1u << 4,
};
#define CMD_ALL (CMD_SERVE | CMD_USERS_ADD | CMD_SPELLS_IMPORT | CMD_LEDGER_VERIFY | \
                 CMD_BILLING_RUN)

struct options {
    const char *db;
    const char *listen;
    const char *public_url;
    const char *access_log;
    const char *port_file;
    const char *role;
    int64_t rate_user_per_min;
    int64_t rate_ip_per_min;
    int64_t rate_casts_per_hour;
    int64_t workers;
    int64_t http_threads;
    int64_t max_connections;
    int64_t spell_timeout_s;
    int64_t idle_timeout_s;
    int64_t spell_max_output;
    int64_t spell_max_memory;
    int64_t spell_nice;
    const char *github_client_id;
    const char *github_url;
    const char *github_api_url;
    const char *github_app_id;
    const char *github_app_installation_id;
    const char *github_app_private_key_file;
    const char *stripe_api_url;
    const char *frontend_url;
    const char *nats_url;
    const char *period;
};

enum opt_kind { OPT_STRING, OPT_INT };

struct opt {
    const char *name;           /* the long flag without "--" */
    const char *env;            /* its environment variable, or NULL */
    enum opt_kind kind;
    unsigned cmds;              /* the commands that take it */
    size_t off;                 /* where in struct options it lands */
    int64_t min, max;           /* the range of an OPT_INT */
    const char *arg;            /* the value's name in --help */
    const char *help;
};

#define O(f) offsetof(struct options, f)

static const struct opt opts[] = {
    { "db", "SPELL_DB", OPT_STRING, CMD_ALL, O(db), 0, 0, "PATH",
      "SQLite database file (default: $XDG_STATE_HOME/spell/server.db,\n"
      "                               else ~/.local/state/spell/server.db, else ./spell.db)" },
    { "listen", "SPELL_LISTEN", OPT_STRING, CMD_SERVE, O(listen), 0, 0, "HOST:PORT",
      "address to listen on, numeric; [v6]:port for IPv6 (127.0.0.1:8080)" },
    { "public-url", "SPELL_PUBLIC_URL", OPT_STRING, CMD_SERVE, O(public_url), 0, 0, "URL",
      "base URL clients reach this server at (http://HOST:PORT)" },
    { "rate-user-per-min", "SPELL_RATE_USER_PER_MIN", OPT_INT, CMD_SERVE,
      O(rate_user_per_min), 1, 1000000, "N", "requests per minute per user (60)" },
    { "rate-ip-per-min", "SPELL_RATE_IP_PER_MIN", OPT_INT, CMD_SERVE, O(rate_ip_per_min), 1,
      1000000, "N", "requests per minute per IP without valid auth (10)" },
    { "rate-casts-per-hour", "SPELL_RATE_CASTS_PER_HOUR", OPT_INT, CMD_SERVE,
      O(rate_casts_per_hour), 1, 1000000, "N", "casts per hour per user (100)" },
    { "workers", "SPELL_WORKERS", OPT_INT, CMD_SERVE, O(workers), 0, 256, "N",
      "service executor threads; 0 accepts casts and runs none (4)" },
    { "http-threads", "SPELL_HTTP_THREADS", OPT_INT, CMD_SERVE, O(http_threads), 1, 64, "N",
      "HTTP event-loop threads (16)" },
    { "max-connections", "SPELL_MAX_CONNECTIONS", OPT_INT, CMD_SERVE, O(max_connections), 1,
      19000, "N", "open connections at once, SSE streams included (16384)" },
    { "idle-timeout", "SPELL_IDLE_TIMEOUT", OPT_INT, CMD_SERVE, O(idle_timeout_s), 1, 3600,
      "SECONDS", "a connection with no request under way is closed after this (60);\n"
      "                               SSE streams are kept open by their pings" },
    { "access-log", "SPELL_ACCESS_LOG", OPT_STRING, CMD_SERVE, O(access_log), 0, 0,
      "FILE|-|off", "where access log lines go; - is stderr (-)" },
    { "port-file", NULL, OPT_STRING, CMD_SERVE, O(port_file), 0, 0, "FILE",
      "write the bound port to FILE once listening" },
    { "spell-timeout", "SPELL_SPELL_TIMEOUT", OPT_INT, CMD_SERVE, O(spell_timeout_s), 1,
      86400, "SECONDS", "run time of a spell that names none (300)" },
    { "spell-max-output", "SPELL_SPELL_MAX_OUTPUT", OPT_INT, CMD_SERVE, O(spell_max_output),
      4096, INT64_C(1) << 32, "BYTES", "stdout one spell run may write (1048576)" },
    { "spell-max-memory", "SPELL_SPELL_MAX_MEMORY", OPT_INT, CMD_SERVE, O(spell_max_memory),
      INT64_C(16) << 20, INT64_C(1) << 40, "BYTES",
      "address space of a spell process (536870912)" },
    { "spell-nice", "SPELL_SPELL_NICE", OPT_INT, CMD_SERVE, O(spell_nice), 0, 19, "N",
      "how much nicer than the server spell processes run, 0-19, so\n"
      "                               answers and streams keep their turn on a busy CPU (10)" },
    { "role", NULL, OPT_STRING, CMD_USERS_ADD, O(role), 0, 0, "ROLE",
      "caster, maker or admin (caster)" },
    { "github-client-id", "GITHUB_CLIENT_ID", OPT_STRING, CMD_SERVE, O(github_client_id), 0, 0,
      "ID", "GitHub OAuth app client id (secret: GITHUB_CLIENT_SECRET)" },
    { "github-url", "GITHUB_URL", OPT_STRING, CMD_SERVE, O(github_url), 0, 0, "URL",
      "GitHub web base URL for OAuth (https://github.com)" },
    { "github-api-url", "GITHUB_API_URL", OPT_STRING, CMD_SERVE, O(github_api_url), 0, 0, "URL",
      "GitHub REST API base URL (https://api.github.com)" },
    { "github-app-id", "GITHUB_APP_ID", OPT_STRING, CMD_SERVE, O(github_app_id), 0, 0, "ID",
      "GitHub App id for workflow spells" },
    { "github-app-installation-id", "GITHUB_APP_INSTALLATION_ID", OPT_STRING, CMD_SERVE,
      O(github_app_installation_id), 0, 0, "ID",
      "default installation of the GitHub App (a spell may name its own)" },
    { "github-app-private-key-file", "GITHUB_APP_PRIVATE_KEY_FILE", OPT_STRING, CMD_SERVE,
      O(github_app_private_key_file), 0, 0, "PATH",
      "the App's private key (PEM); or its text in GITHUB_APP_PRIVATE_KEY" },
    { "period", NULL, OPT_STRING, CMD_BILLING_RUN, O(period), 0, 0, "YYYY-MM",
      "the closed month to invoice (default: the previous month)" },
    { "stripe-api-url", "STRIPE_API_URL", OPT_STRING, CMD_SERVE | CMD_BILLING_RUN,
      O(stripe_api_url), 0, 0, "URL",
      "Stripe API base URL (https://api.stripe.com; secrets: STRIPE_SECRET_KEY,\n"
      "                               STRIPE_WEBHOOK_SECRET)" },
    { "frontend-url", "FRONTEND_URL", OPT_STRING, CMD_SERVE, O(frontend_url), 0, 0, "URL",
      "where browser sign-in and card flows land afterwards (the public URL)" },
    { "nats-url", "SPELL_NATS_URL", OPT_STRING, CMD_SERVE, O(nats_url), 0, 0, "URL",
      "NATS JetStream for the bus past one machine (not used by this build)" },
};

/* Secrets of DESIGN.md §6: environment only, so they never sit in argv
 * (visible in ps) or a shell history. */
static const char *const secret_env[] = {
    "GITHUB_CLIENT_SECRET", "GITHUB_APP_PRIVATE_KEY", "GITHUB_WEBHOOK_SECRET",
    "STRIPE_SECRET_KEY", "STRIPE_WEBHOOK_SECRET", "SPELL_ADMIN_SECRET",
};

static void log_line(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static void log_line(const char *fmt, ...)
{
    char ts[SPELL_TIME_RFC3339_SIZE] = "-";
    char line[1024];
    va_list ap;

    (void)spell_time_format(spell_time_now_ms(), ts, sizeof ts);
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    fprintf(stderr, "%s spell-server: %s\n", ts, line);
}

static void usage_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static void usage_error(const char *fmt, ...)
{
    va_list ap;

    fputs("spell-server: ", stderr);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputs("\nTry 'spell-server --help'.\n", stderr);
}

static void print_flags(FILE *to, unsigned cmd)
{
    for (size_t i = 0; i < sizeof opts / sizeof opts[0]; i++) {
        const struct opt *o = &opts[i];
        char left[64];
        if (!(o->cmds & cmd))
            continue;
        snprintf(left, sizeof left, "--%s %s", o->name, o->arg);
        fprintf(to, "  %-28s %s\n", left, o->help);
        if (o->env)
            fprintf(to, "  %-28s environment: %s\n", "", o->env);
    }
    fprintf(to, "  %-28s %s\n", "-h, --help", "show this help and exit");
    if (cmd & CMD_SERVE) {
        fputs("\nSecrets are read from the environment only:\n ", to);
        for (size_t i = 0; i < sizeof secret_env / sizeof secret_env[0]; i++)
            fprintf(to, " %s", secret_env[i]);
        fputc('\n', to);
    }
}

static void usage(FILE *to, unsigned cmd)
{
    switch (cmd) {
    case CMD_USERS_ADD:
        fputs("Usage: spell-server users add LOGIN [--role caster|maker|admin] [--db PATH]\n\n"
              "Creates a user and prints its first API key on stdout.  The key is shown\n"
              "only this once; the server keeps only a hash of it.\n\n", to);
        break;
    case CMD_SPELLS_IMPORT:
        fputs("Usage: spell-server spells import FILE.json... [--db PATH]\n\n"
              "Imports spell manifests (one spell object or an array of them per file).\n"
              "Relative paths in execution.command resolve against the file's folder.\n"
              "A spell whose key exists is replaced.\n\n", to);
        break;
    case CMD_LEDGER_VERIFY:
        fputs("Usage: spell-server ledger verify [--db PATH]\n\n"
              "Walks the ledger: every seq from 1 present and each hash recomputing.\n"
              "Prints the entries checked; exits 1 at the first bad seq.\n\n", to);
        break;
    case CMD_BILLING_RUN:
        fputs("Usage: spell-server billing run-monthly [--period YYYY-MM] [--db PATH]\n\n"
              "Invoices every user with usage in a closed month through Stripe: one\n"
              "finalized invoice per user, an item per spell.  Running it again bills\n"
              "nothing twice.  Needs STRIPE_SECRET_KEY.  Exits 1 when a user could not\n"
              "be invoiced (run it again later).\n\n", to);
        break;
    case CMD_SERVE:
        fputs("Usage: spell-server serve [flags]\n\n"
              "Runs the platform API until SIGTERM or SIGINT.\n\n", to);
        break;
    default:
        fputs("Usage: spell-server [serve] [flags]\n"
              "       spell-server users add LOGIN [--role caster|maker|admin]\n"
              "       spell-server spells import FILE.json...\n"
              "       spell-server ledger verify\n"
              "       spell-server billing run-monthly [--period YYYY-MM]\n"
              "       spell-server COMMAND --help\n\n"
              "The Spell platform server.\n\n"
              "  -V, --version                print the version and exit\n", to);
        cmd = CMD_SERVE;
        break;
    }
    fputs("Flags:\n", to);
    print_flags(to, cmd);
}

/* Strict whole numbers: optional '-', digits only, no spaces, in range. */
static int parse_int(const char *who, const char *text, int64_t min, int64_t max, int64_t *out)
{
    char *end = NULL;
    long long v;

    if (!text[0] || !(text[0] == '-' || (text[0] >= '0' && text[0] <= '9'))) {
        usage_error("%s: '%s' is not a whole number", who, text);
        return SPELL_EINVAL;
    }
    errno = 0;
    v = strtoll(text, &end, 10);
    if (errno == ERANGE || !end || *end) {
        usage_error("%s: '%s' is not a whole number", who, text);
        return SPELL_EINVAL;
    }
    if (v < min || v > max) {
        usage_error("%s: %lld is out of range (%lld..%lld)", who, v, (long long)min,
                    (long long)max);
        return SPELL_EINVAL;
    }
    *out = v;
    return SPELL_OK;
}

static int set_opt(struct options *o, const struct opt *d, const char *who, const char *value)
{
    char *base = (char *)o;

    if (strlen(value) >= MAIN_PATH_MAX) {
        usage_error("%s: the value is too long", who);
        return SPELL_EINVAL;
    }
    if (d->kind == OPT_STRING) {
        memcpy(base + d->off, &value, sizeof value);
        return SPELL_OK;
    }
    return parse_int(who, value, d->min, d->max, (int64_t *)(void *)(base + d->off));
}

static int load_env(struct options *o, unsigned cmd)
{
    for (size_t i = 0; i < sizeof opts / sizeof opts[0]; i++) {
        const char *v;
        if (!opts[i].env || !(opts[i].cmds & cmd))
            continue;
        v = getenv(opts[i].env);
        if (v && v[0] && set_opt(o, &opts[i], opts[i].env, v) != SPELL_OK)
            return SPELL_EINVAL;
    }
    return SPELL_OK;
}

/*
 * Reads flags from argv[first..argc); words that are not flags are
 * collected into words (cap entries).  Returns 0 to go on, 1 when --help
 * was printed, or -1 on a usage error (already reported).
 */
static int parse_flags(struct options *o, unsigned cmd, int argc, char **argv, int first,
                       const char **words, size_t cap, size_t *nwords)
{
    *nwords = 0;
    for (int i = first; i < argc; i++) {
        const char *a = argv[i];
        const struct opt *d = NULL;
        const char *value = NULL;
        char who[80];
        size_t namelen;

        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            usage(stdout, cmd);
            return 1;
        }
        if (strcmp(a, "--") == 0) {
            for (i++; i < argc; i++) {
                if (*nwords >= cap) {
                    usage_error("too many arguments");
                    return -1;
                }
                words[(*nwords)++] = argv[i];
            }
            break;
        }
        if (a[0] != '-' || a[1] == '\0') {
            if (*nwords >= cap) {
                usage_error("unexpected argument '%s'", a);
                return -1;
            }
            words[(*nwords)++] = a;
            continue;
        }
        if (a[1] != '-') {
            usage_error("unknown option '%s'", a);
            return -1;
        }
        namelen = strcspn(a + 2, "=");
        for (size_t k = 0; k < sizeof opts / sizeof opts[0]; k++)
            if ((opts[k].cmds & cmd) && strlen(opts[k].name) == namelen &&
                strncmp(opts[k].name, a + 2, namelen) == 0)
                d = &opts[k];
        if (!d) {
            usage_error("unknown option '%s'", a);
            return -1;
        }
        snprintf(who, sizeof who, "--%s", d->name);
        if (a[2 + namelen] == '=') {
            value = a + 3 + namelen;
        } else {
            if (i + 1 >= argc) {
                usage_error("%s needs a value", who);
                return -1;
            }
            value = argv[++i];
        }
        if (set_opt(o, d, who, value) != SPELL_OK)
            return -1;
    }
    return 0;
}

/* The default database path; creates the state folder (0700) when the
 * default lives under one. */
static int default_db(char *out, size_t cap)
{
    const char *state = getenv("XDG_STATE_HOME");
    const char *home = getenv("HOME");
    char dir[MAIN_PATH_MAX];
    int n;

    if (state && state[0] == '/')
        n = snprintf(dir, sizeof dir, "%s/spell", state);
    else if (home && home[0] == '/')
        n = snprintf(dir, sizeof dir, "%s/.local/state/spell", home);
    else
        n = snprintf(dir, sizeof dir, ".");
    if (n < 0 || (size_t)n >= sizeof dir)
        return SPELL_ETOOBIG;
    if (strcmp(dir, ".") != 0) {
        /* mkdir -p, each level 0700. */
        for (char *p = dir + 1; *p; p++) {
            if (*p != '/')
                continue;
            *p = '\0';
            if (mkdir(dir, 0700) != 0 && errno != EEXIST)
                return SPELL_EIO;
            *p = '/';
        }
        if (mkdir(dir, 0700) != 0 && errno != EEXIST)
            return SPELL_EIO;
        n = snprintf(out, cap, "%s/server.db", dir);
    } else {
        n = snprintf(out, cap, "./spell.db");
    }
    return (n < 0 || (size_t)n >= cap) ? SPELL_ETOOBIG : SPELL_OK;
}

static int resolve_db(const struct options *o, char *out, size_t cap)
{
    int rc;

    if (o->db) {
        if (!o->db[0] || strlen(o->db) >= cap) {
            usage_error("--db: the path is empty or too long");
            return SPELL_EINVAL;
        }
        snprintf(out, cap, "%s", o->db);
        return SPELL_OK;
    }
    if ((rc = default_db(out, cap)) != SPELL_OK)
        fprintf(stderr, "spell-server: cannot make the state folder for the database: %s\n",
                strerror(errno));
    return rc;
}

/* "host:port" or "[v6]:port", numeric addresses only. */
static int parse_listen(const char *text, char *host, size_t hostcap, uint16_t *port,
                        int *ipv6)
{
    const char *colon;
    size_t hlen;
    int64_t p = 0;
    unsigned char addr[sizeof(struct in6_addr)];

    *ipv6 = 0;
    if (text[0] == '[') {
        const char *close = strchr(text, ']');
        if (!close || close[1] != ':')
            goto bad;
        hlen = (size_t)(close - text - 1);
        if (hlen == 0 || hlen >= hostcap)
            goto bad;
        memcpy(host, text + 1, hlen);
        host[hlen] = '\0';
        colon = close + 1;
        if (inet_pton(AF_INET6, host, addr) != 1)
            goto bad;
        *ipv6 = 1;
    } else {
        colon = strrchr(text, ':');
        if (!colon)
            goto bad;
        hlen = (size_t)(colon - text);
        if (hlen == 0 || hlen >= hostcap)
            goto bad;
        memcpy(host, text, hlen);
        host[hlen] = '\0';
        if (strcmp(host, "localhost") == 0)
            snprintf(host, hostcap, "127.0.0.1");
        if (inet_pton(AF_INET, host, addr) != 1)
            goto bad;
    }
    if (parse_int("--listen port", colon + 1, 0, 65535, &p) != SPELL_OK)
        return SPELL_EINVAL;
    *port = (uint16_t)p;
    return SPELL_OK;
bad:
    usage_error("--listen: '%s' is not HOST:PORT or [IPv6]:PORT with a numeric address", text);
    return SPELL_EINVAL;
}

/* A free port on host, for --listen HOST:0 without --public-url: the
 * public URL must name the real port before the first request arrives. */
static int probe_port(const char *host, int ipv6, uint16_t *port)
{
    struct sockaddr_storage ss;
    socklen_t len;
    int fd = -1, rc = SPELL_EIO;

    memset(&ss, 0, sizeof ss);
    if (ipv6) {
        struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)(void *)&ss;
        s6->sin6_family = AF_INET6;
        if (inet_pton(AF_INET6, host, &s6->sin6_addr) != 1)
            goto out;
        len = sizeof *s6;
    } else {
        struct sockaddr_in *s4 = (struct sockaddr_in *)(void *)&ss;
        s4->sin_family = AF_INET;
        if (inet_pton(AF_INET, host, &s4->sin_addr) != 1)
            goto out;
        len = sizeof *s4;
    }
    fd = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0 || bind(fd, (struct sockaddr *)&ss, len) != 0 ||
        getsockname(fd, (struct sockaddr *)&ss, &len) != 0)
        goto out;
    *port = ntohs(ipv6 ? ((struct sockaddr_in6 *)(void *)&ss)->sin6_port
                       : ((struct sockaddr_in *)(void *)&ss)->sin_port);
    rc = SPELL_OK;
out:
    if (fd >= 0)
        close(fd);
    return rc;
}

static int write_port_file(const char *path, uint16_t port)
{
    char tmp[MAIN_PATH_MAX + 8];
    FILE *f;
    int n = snprintf(tmp, sizeof tmp, "%s.tmp", path);

    if (n < 0 || (size_t)n >= sizeof tmp)
        return SPELL_ETOOBIG;
    f = fopen(tmp, "we");
    if (!f)
        return SPELL_EIO;
    fprintf(f, "%u\n", (unsigned)port);
    if (fclose(f) != 0 || rename(tmp, path) != 0) {
        unlink(tmp);
        return SPELL_EIO;
    }
    return SPELL_OK;
}

/* The largest App private key read from a file. */
#define MAIN_PEM_MAX (16 * 1024)

static const char *env_secret(const char *name)
{
    const char *v = getenv(name);
    return v && v[0] ? v : NULL;
}

static int check_url(const char *flag, const char *v)
{
    if (!v)
        return SPELL_OK;
    if ((strncmp(v, "http://", 7) != 0 && strncmp(v, "https://", 8) != 0) ||
        strlen(v) >= MAIN_URL_MAX || strpbrk(v, " \t\r\n\"<>")) {
        usage_error("--%s: '%s' is not an http:// or https:// URL", flag, v);
        return SPELL_EINVAL;
    }
    return SPELL_OK;
}

/* Reads the App's private key file (at most MAIN_PEM_MAX bytes) into pem. */
static int read_pem(const char *path, char *pem, size_t cap)
{
    FILE *f = fopen(path, "re");
    if (!f) {
        log_line("cannot read --github-app-private-key-file %s: %s", path, strerror(errno));
        return SPELL_EIO;
    }
    size_t n = fread(pem, 1, cap, f);
    int more = fgetc(f) != EOF;
    fclose(f);
    if (more || n == cap) {
        log_line("--github-app-private-key-file %s is larger than %d bytes", path, MAIN_PEM_MAX);
        return SPELL_ETOOBIG;
    }
    pem[n] = '\0';
    return SPELL_OK;
}

/* Fills srv->providers from the options and the environment; the URLs
 * default to the providers' real ones.  pem holds the App key read from a
 * file and must outlive srv. */
static int load_providers(const struct options *o, struct providers *p, char *pem, size_t cap)
{
    memset(p, 0, sizeof *p);
    if (check_url("github-url", o->github_url) || check_url("github-api-url", o->github_api_url) ||
        check_url("stripe-api-url", o->stripe_api_url) ||
        check_url("frontend-url", o->frontend_url))
        return SPELL_EINVAL;
    p->github_client_id = o->github_client_id;
    p->github_client_secret = env_secret("GITHUB_CLIENT_SECRET");
    p->github_url = o->github_url ? o->github_url : "https://github.com";
    p->github_api_url = o->github_api_url ? o->github_api_url : "https://api.github.com";
    p->github_app_id = o->github_app_id;
    p->github_app_installation_id = o->github_app_installation_id;
    p->github_app_private_key = env_secret("GITHUB_APP_PRIVATE_KEY");
    if (o->github_app_private_key_file) {
        if (read_pem(o->github_app_private_key_file, pem, cap) != SPELL_OK)
            return SPELL_EINVAL;
        p->github_app_private_key = pem;
    }
    p->github_webhook_secret = env_secret("GITHUB_WEBHOOK_SECRET");
    p->stripe_secret_key = env_secret("STRIPE_SECRET_KEY");
    p->stripe_webhook_secret = env_secret("STRIPE_WEBHOOK_SECRET");
    p->stripe_api_url = o->stripe_api_url ? o->stripe_api_url : "https://api.stripe.com";
    p->frontend_url = o->frontend_url;
    p->admin_secret = env_secret("SPELL_ADMIN_SECRET");
    p->nats_url = o->nats_url;
    if (p->nats_url)
        log_line("--nats-url is set; this build runs the in-process bus, so it is ignored");
    return SPELL_OK;
}

static void apply_limits(const struct options *o, struct server_limits *l)
{
    l->rate_user_per_min = (int)o->rate_user_per_min;
    l->rate_ip_per_min = (int)o->rate_ip_per_min;
    l->rate_casts_per_hour = (int)o->rate_casts_per_hour;
    l->workers = (int)o->workers;
    l->default_timeout_s = o->spell_timeout_s;
    l->max_output_bytes = o->spell_max_output;
    l->max_memory_bytes = o->spell_max_memory;
    l->spell_nice = (int)o->spell_nice;
}

static int cmd_serve(const struct options *o)
{
    struct server srv;
    struct httpd_config hc;
    struct httpd *h = NULL;
    struct route *routes = NULL;
    size_t nroutes = 0;
    char db[MAIN_PATH_MAX], host[MAIN_HOST_MAX], url[MAIN_URL_MAX], err[APP_ERR_MAX];
    static char pem[MAIN_PEM_MAX + 1];
    uint16_t port = 0;
    int ipv6 = 0, sfd = -1, status = 1, rc;
    FILE *access = NULL;
    sigset_t mask;

    memset(&srv, 0, sizeof srv);
    memset(&hc, 0, sizeof hc);
    if (parse_listen(o->listen, host, sizeof host, &port, &ipv6) != SPELL_OK)
        return 2;
    if (resolve_db(o, db, sizeof db) != SPELL_OK)
        return o->db ? 2 : 1;

    if (o->public_url) {
        size_t len = strlen(o->public_url);
        if ((strncmp(o->public_url, "http://", 7) != 0 &&
             strncmp(o->public_url, "https://", 8) != 0) || len >= sizeof url ||
            strpbrk(o->public_url, " \t\r\n\"<>")) {
            usage_error("--public-url: '%s' is not an http:// or https:// URL", o->public_url);
            return 2;
        }
        snprintf(url, sizeof url, "%s", o->public_url);
        while (len > 0 && url[len - 1] == '/')
            url[--len] = '\0';
    } else {
        const char *shown = host;
        if (port == 0 && probe_port(host, ipv6, &port) != SPELL_OK) {
            log_line("cannot find a free port on %s: %s", host, strerror(errno));
            return 1;
        }
        if (strcmp(host, "0.0.0.0") == 0)
            shown = "127.0.0.1";
        else if (ipv6 && strcmp(host, "::") == 0)
            shown = "::1";
        snprintf(url, sizeof url, ipv6 ? "http://[%s]:%u" : "http://%s:%u", shown,
                 (unsigned)port);
    }

    if (strcmp(o->access_log, "off") == 0) {
        access = NULL;
    } else if (strcmp(o->access_log, "-") == 0) {
        access = stderr;
    } else {
        access = fopen(o->access_log, "ae");
        if (!access) {
            log_line("cannot open the access log %s: %s", o->access_log, strerror(errno));
            return 1;
        }
        setvbuf(access, NULL, _IOLBF, 0);
    }

    /* Block the stop signals before any thread exists, so every thread
     * inherits the mask and only the signalfd sees them. */
    sigemptyset(&mask);
    sigaddset(&mask, SIGTERM);
    sigaddset(&mask, SIGINT);
    if (pthread_sigmask(SIG_BLOCK, &mask, NULL) != 0 ||
        (sfd = signalfd(-1, &mask, SFD_CLOEXEC)) < 0) {
        log_line("cannot set up signal handling: %s", strerror(errno));
        goto out;
    }

    if (load_providers(o, &srv.providers, pem, sizeof pem) != SPELL_OK) {
        status = 2;
        goto out;
    }
    srv.public_url = url;
    apply_limits(o, &srv.limits);
    if (app_setup(&srv, db, APP_ALL, err, sizeof err) != SPELL_OK) {
        log_line("%s (database %s)", err, db);
        goto out;
    }
    log_line("database %s", db);
    if (app_exec_start(&srv, err, sizeof err) != SPELL_OK) {
        log_line("%s", err);
        goto out;
    }
    if (srv.limits.workers == 0)
        log_line("--workers 0: casts are accepted and stay queued; this process runs none");
    if ((rc = routes_build(&srv, &routes, &nroutes)) != SPELL_OK) {
        log_line("cannot build the route table: %s", spell_strerror(rc));
        goto out;
    }

    hc.address = host;
    hc.port = port;
    hc.routes = routes;
    hc.nroutes = nroutes;
    hc.threads = (unsigned)o->http_threads;
    hc.max_connections = (unsigned)o->max_connections;
    hc.timeout_s = (unsigned)o->idle_timeout_s;
    hc.access_log = access;
    hc.metrics = srv.metrics;
    hc.clock.now_ms = srv.clock.now_ms;
    hc.clock.ud = srv.clock.ud;
    hc.authenticate = auth_authenticate;
    hc.auth_ud = &srv;
    if ((rc = httpd_start(&hc, &h)) != SPELL_OK) {
        log_line("cannot listen on %s: %s", o->listen, spell_strerror(rc));
        goto out;
    }
    port = httpd_port(h);
    if (o->port_file && write_port_file(o->port_file, port) != SPELL_OK) {
        log_line("cannot write the port file %s: %s", o->port_file, strerror(errno));
        goto out;
    }
    log_line("listening on %s%s%s:%u (public URL %s)", ipv6 ? "http://[" : "http://", host,
          ipv6 ? "]" : "", (unsigned)port, url);

    for (;;) {
        struct signalfd_siginfo si;
        ssize_t n = read(sfd, &si, sizeof si);
        if (n == (ssize_t)sizeof si) {
            log_line("%s received: stopping (in-flight requests finish, streams close)",
                  si.ssi_signo == SIGINT ? "SIGINT" : "SIGTERM");
            break;
        }
        if (n < 0 && errno == EINTR)
            continue;
        log_line("cannot read the signal descriptor: %s", strerror(errno));
        goto out;
    }
    status = 0;
out:
    if (h) {
        if (httpd_stop(h) == SPELL_ETIMEOUT)
            log_line("some requests did not finish within the grace period and were cut off");
        h = NULL;
    }
    app_teardown(&srv);
    routes_free(routes);
    if (access && access != stderr)
        fclose(access);
    if (sfd >= 0)
        close(sfd);
    if (status == 0)
        log_line("stopped");
    return status;
}

static int cmd_users_add(const struct options *o, const char *login)
{
    struct server srv;
    char db[MAIN_PATH_MAX], err[APP_ERR_MAX];
    char key[AUTH_KEY_OUT_SIZE];
    char user_id[STORE_ID_SIZE];
    const char *role = o->role ? o->role : "caster";
    int rc, status = 1;

    memset(&srv, 0, sizeof srv);
    memset(key, 0, sizeof key);
    memset(user_id, 0, sizeof user_id);
    if (strcmp(role, "caster") != 0 && strcmp(role, "maker") != 0 &&
        strcmp(role, "admin") != 0) {
        usage_error("--role: '%s' is not caster, maker or admin", role);
        return 2;
    }
    if (resolve_db(o, db, sizeof db) != SPELL_OK)
        return o->db ? 2 : 1;
    if (app_setup(&srv, db, APP_STORE | APP_METRICS | APP_AUTH, err, sizeof err) != SPELL_OK) {
        fprintf(stderr, "spell-server: %s (database %s)\n", err, db);
        return 1;
    }
    rc = auth_user_create(&srv, login, role, key, sizeof key, user_id);
    if (rc == STORE_ECONFLICT) {
        fprintf(stderr, "spell-server: the login '%s' is taken\n", login);
        goto out;
    }
    if (rc == SPELL_EINVAL || rc == SPELL_ETOOBIG) {
        fprintf(stderr, "spell-server: '%s' is not a valid login (1 to 39 letters, digits "
                "or '-')\n", login);
        status = 2;
        goto out;
    }
    if (rc != SPELL_OK) {
        fprintf(stderr, "spell-server: cannot create the user: %s\n", spell_strerror(rc));
        goto out;
    }
    printf("%s\n", key);
    fflush(stdout);
    fprintf(stderr, "spell-server: created %s '%s' (%s); the API key above is not shown again\n",
            role, login, user_id);
    status = 0;
out:
    explicit_bzero(key, sizeof key);
    app_teardown(&srv);
    return status;
}

static int cmd_spells_import(const struct options *o, const char *const *files, size_t n)
{
    struct server srv;
    char db[MAIN_PATH_MAX], err[APP_ERR_MAX];
    int status = 1;

    memset(&srv, 0, sizeof srv);
    if (resolve_db(o, db, sizeof db) != SPELL_OK)
        return o->db ? 2 : 1;
    if (app_setup(&srv, db, APP_STORE | APP_METRICS, err, sizeof err) != SPELL_OK) {
        fprintf(stderr, "spell-server: %s (database %s)\n", err, db);
        return 1;
    }
    for (size_t i = 0; i < n; i++) {
        char why[APP_ERR_MAX] = "";
        int imported = 0;
        int rc = api_spells_import_file(&srv, files[i], why, sizeof why, &imported);
        if (rc != SPELL_OK) {
            fprintf(stderr, "spell-server: %s: %s\n", files[i],
                    why[0] ? why : spell_strerror(rc));
            goto out;
        }
        printf("%s: %d spell%s imported\n", files[i], imported, imported == 1 ? "" : "s");
    }
    status = 0;
out:
    app_teardown(&srv);
    return status;
}

static int cmd_ledger_verify(const struct options *o)
{
    struct server srv;
    char db[MAIN_PATH_MAX], err[APP_ERR_MAX];
    int64_t checked = 0, bad = 0;
    int rc, status = 1;

    memset(&srv, 0, sizeof srv);
    if (resolve_db(o, db, sizeof db) != SPELL_OK)
        return o->db ? 2 : 1;
    if (app_setup(&srv, db, APP_STORE, err, sizeof err) != SPELL_OK) {
        fprintf(stderr, "spell-server: %s (database %s)\n", err, db);
        return 1;
    }
    rc = store_ledger_verify(srv.store, &checked, &bad);
    if (rc == SPELL_OK) {
        printf("ledger: %lld entries checked, OK\n", (long long)checked);
        status = 0;
    } else if (rc == SPELL_EVERIFY) {
        printf("ledger: entry seq %lld is missing or does not verify "
               "(%lld entries checked)\n", (long long)bad, (long long)checked);
    } else {
        fprintf(stderr, "spell-server: cannot read the ledger: %s\n", spell_strerror(rc));
    }
    app_teardown(&srv);
    return status;
}

static int cmd_billing_run(const struct options *o)
{
    static char pem[MAIN_PEM_MAX + 1];
    struct server srv;
    struct billing_run_summary sum;
    char db[MAIN_PATH_MAX], err[APP_ERR_MAX], why[BILLING_ERR_MAX];
    int rc, status = 1;

    memset(&srv, 0, sizeof srv);
    if (resolve_db(o, db, sizeof db) != SPELL_OK)
        return o->db ? 2 : 1;
    if (load_providers(o, &srv.providers, pem, sizeof pem) != SPELL_OK)
        return 2;
    if (app_setup(&srv, db, APP_STORE, err, sizeof err) != SPELL_OK) {
        fprintf(stderr, "spell-server: %s (database %s)\n", err, db);
        return 1;
    }
    rc = billing_run_monthly(&srv, o->period, &sum, why, sizeof why);
    if (rc == SPELL_EINVAL) {
        fprintf(stderr, "spell-server: billing run-monthly: %s\n", why);
        status = 2;
    } else if (rc != SPELL_OK) {
        fprintf(stderr, "spell-server: billing run-monthly: %s\n", spell_strerror(rc));
    } else {
        printf("billing %s: %d invoiced, %d skipped, %d failed\n", sum.period, sum.invoiced,
               sum.skipped, sum.failed);
        if (sum.failed)
            fprintf(stderr, "spell-server: billing run-monthly: %s\n", why);
        status = sum.failed ? 1 : 0;
    }
    app_teardown(&srv);
    return status;
}

int main(int argc, char **argv)
{
    struct options o;
    unsigned cmd = CMD_SERVE;
    int first = 1, r;
    const char *words[64];
    size_t nwords = 0;

    signal(SIGPIPE, SIG_IGN);
    memset(&o, 0, sizeof o);
    o.listen = "127.0.0.1:8080";
    o.access_log = "-";
    o.rate_user_per_min = 60;
    o.rate_ip_per_min = 10;
    o.rate_casts_per_hour = 100;
    o.workers = 4;
    o.http_threads = 16;
    o.max_connections = 16384;
    o.spell_timeout_s = 300;
    o.idle_timeout_s = 60;
    o.spell_max_output = INT64_C(1) << 20;
    o.spell_max_memory = INT64_C(512) << 20;
    o.spell_nice = 10;

    if (argc > 1 && (strcmp(argv[1], "--version") == 0 || strcmp(argv[1], "-V") == 0)) {
        printf("spell-server %s\n", spell_version());
        return 0;
    }
    if (argc > 1 && (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0 ||
                     strcmp(argv[1], "help") == 0)) {
        usage(stdout, 0);
        return 0;
    }
    if (argc > 1 && argv[1][0] != '-') {
        const char *sub = argc > 2 ? argv[2] : "";
        if (strcmp(argv[1], "serve") == 0) {
            first = 2;
        } else if (strcmp(argv[1], "users") == 0 && strcmp(sub, "add") == 0) {
            cmd = CMD_USERS_ADD;
            first = 3;
        } else if (strcmp(argv[1], "spells") == 0 && strcmp(sub, "import") == 0) {
            cmd = CMD_SPELLS_IMPORT;
            first = 3;
        } else if (strcmp(argv[1], "ledger") == 0 && strcmp(sub, "verify") == 0) {
            cmd = CMD_LEDGER_VERIFY;
            first = 3;
        } else if (strcmp(argv[1], "billing") == 0 && strcmp(sub, "run-monthly") == 0) {
            cmd = CMD_BILLING_RUN;
            first = 3;
        } else if (strcmp(argv[1], "billing") == 0 &&
                   (strcmp(sub, "--help") == 0 || strcmp(sub, "-h") == 0)) {
            usage(stdout, CMD_BILLING_RUN);
            return 0;
        } else if (strcmp(argv[1], "users") == 0 || strcmp(argv[1], "spells") == 0 ||
                   strcmp(argv[1], "ledger") == 0) {
            if (strcmp(sub, "--help") == 0 || strcmp(sub, "-h") == 0) {
                usage(stdout, strcmp(argv[1], "users") == 0    ? CMD_USERS_ADD
                              : strcmp(argv[1], "spells") == 0 ? CMD_SPELLS_IMPORT
                                                               : CMD_LEDGER_VERIFY);
                return 0;
            }
            usage_error("unknown command '%s %s'", argv[1], sub);
            return 2;
        } else {
            usage_error("unknown command '%s'", argv[1]);
            return 2;
        }
    }

    r = parse_flags(&o, cmd, argc, argv, first, words, sizeof words / sizeof words[0],
                    &nwords);
    if (r != 0)
        return r > 0 ? 0 : 2;
    /* Flags win over the environment: read the environment first, then
     * the flags again over it. */
    if (load_env(&o, cmd) != SPELL_OK)
        return 2;
    if (parse_flags(&o, cmd, argc, argv, first, words, sizeof words / sizeof words[0],
                    &nwords) != 0)
        return 2;

    switch (cmd) {
    case CMD_USERS_ADD:
        if (nwords != 1) {
            usage_error("users add takes exactly one LOGIN");
            return 2;
        }
        return cmd_users_add(&o, words[0]);
    case CMD_SPELLS_IMPORT:
        if (nwords == 0) {
            usage_error("spells import needs at least one FILE.json");
            return 2;
        }
        return cmd_spells_import(&o, words, nwords);
    case CMD_LEDGER_VERIFY:
        if (nwords != 0) {
            usage_error("ledger verify takes no arguments");
            return 2;
        }
        return cmd_ledger_verify(&o);
    case CMD_BILLING_RUN:
        if (nwords != 0) {
            usage_error("billing run-monthly takes no arguments");
            return 2;
        }
        return cmd_billing_run(&o);
    default:
        if (nwords != 0) {
            usage_error("unexpected argument '%s'", words[0]);
            return 2;
        }
        return cmd_serve(&o);
    }
}
