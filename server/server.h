/*
 * The application context of spell-server: what every handler, the
 * executors and the command line share.  main.c builds one struct server
 * at start and hands it to each route as its user data.
 *
 * Parts (each its own static library under server/):
 *   http/   libmicrohttpd daemon, router, SSE hub, metrics
 *   store/  persistence behind store.h (SQLite now, PostgreSQL later)
 *   auth/   API keys (Argon2id, verified-key cache), sessions, the
 *           authenticate hook, rate limits, /v1/auth and /v1/keys handlers
 *   api/    casts, budgets and usage, spells, GDPR handlers
 *   exec/   executors (service), cast lifecycle, the event bus
 *
 * Time is read through srv->clock only, so tests can move it.
 */
#ifndef SPELL_SERVER_SERVER_H
#define SPELL_SERVER_SERVER_H

#include <stdint.h>

struct store;
struct sse_hub;
struct metrics;
struct metric;
struct auth;
struct ratelimit;
struct executor;
struct bus;
struct identity;
struct billing;
struct response;
struct github;

/* An injectable clock: Unix milliseconds. */
struct srv_clock {
    int64_t (*now_ms)(void *ud);    /* NULL: the system clock */
    void *ud;
};

int64_t srv_now_ms(const struct srv_clock *c);

/* Limits and switches from the command line (each with an environment
 * variable; see main.c and docs/operations.md). */
struct server_limits {
    int rate_user_per_min;      /* 60: requests per authenticated user */
    int rate_ip_per_min;        /* 10: requests per IP without auth */
    int rate_casts_per_hour;    /* 100: casts per user */
    int workers;                /* service executor threads */
    int64_t default_timeout_s;  /* a spell's run time when it names none */
    int64_t max_output_bytes;   /* stdout a spell may write in one run */
    int64_t max_memory_bytes;   /* address space of a spell process */
    int spell_nice;             /* how much nicer than the server a spell runs */
};

/*
 * The external providers (DESIGN.md §6).  Every base URL defaults to the
 * provider's real one and is configurable so tests point it at a local
 * stand-in.  Secrets come from the environment only (never argv, never a
 * log line); a NULL or "" secret means the provider is not configured.
 */
struct providers {
    const char *github_client_id;       /* OAuth app (web and device flow) */
    const char *github_client_secret;
    const char *github_url;             /* https://github.com: OAuth and device pages */
    const char *github_api_url;         /* https://api.github.com */
    const char *github_app_id;          /* GitHub App (workflow executor) */
    const char *github_app_private_key; /* PEM text */
    const char *github_app_installation_id;
    const char *github_webhook_secret;
    const char *stripe_secret_key;
    const char *stripe_webhook_secret;
    const char *stripe_api_url;         /* https://api.stripe.com */
    const char *frontend_url;           /* where browser flows land afterwards */
    const char *admin_secret;           /* for /admin/... routes */
    const char *nats_url;               /* reserved: the bus past one machine */
};

/* The authenticated caller of a request (httpd_request_principal()). */
struct principal {
    char user_id[48];
    char login[65];
    char role[16];              /* caster, maker, admin */
    /* How the request authenticated: an API key (its prefix) or a
     * session (the SHA-256 hex of its token). */
    int via_session;
    char key_prefix[17];
    char session_hash[65];
};

struct server {
    struct store *store;
    struct sse_hub *hub;
    struct metrics *metrics;
    struct auth *auth;
    struct ratelimit *rl;
    struct executor *exec;
    struct bus *bus;
    /* GitHub identity (OAuth web and device flow) and Stripe billing; NULL
     * until their parts are set up. */
    struct identity *identity;
    struct billing *billing;
    /* The billing gate of the cast path (billing_cast_check(), set when the
     * billing part is built; NULL lets every cast through): SPELL_OK to go
     * on, else *refusal is the 402 to send. */
    int (*cast_gate)(struct server *srv, const char *user_id, int64_t estimate_cents,
                     struct response **refusal);
    /* The GitHub App client of the workflow executor (server/github/);
     * NULL when no App is configured. */
    struct github *github;
    struct providers providers;
    /* spell_budget_rejections_total{code,reason}, registered in metrics by
     * api_metrics_register(); NULL when there is no registry. */
    struct metric *budget_rejections;
    struct srv_clock clock;
    struct server_limits limits;
    /* The public base URL of this server ("http://127.0.0.1:8080"), for
     * Location headers, progress_sse and OpenGraph canonical links. */
    const char *public_url;
};

#endif
