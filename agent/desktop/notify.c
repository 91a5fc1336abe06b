/*
 * Desktop notifications through libnotify, in the desktop helper.
 *
 * The first note initialises libnotify and asks the notification server
 * for its capabilities, which doubles as the check that one answers.  When
 * none does (no session bus, nobody owning org.freedesktop.Notifications)
 * or a later show fails, one line goes to the log and the module goes
 * silent: the daemon is told (WIRE_NOTES_OFF), so desktop_notify() drops
 * every later note at once, and no show is tried again.  Bodies are
 * escaped as markup when the server interprets markup, so a cast's message
 * shows as written.
 */
#include <stdio.h>
#include <string.h>

#include <libnotify/notify.h>

#include "helper.h"

static void go_silent(struct helper *d, const char *why)
{
    d->notify_dead = true;
    helper_notes_off(d);
    desktop_log("desktop: notifications are off: %s", why);
}

static bool ensure_init(struct helper *d)
{
    GList *caps;

    if (d->notify_dead)
        return false;
    if (d->notify_inited)
        return true;
    if (!notify_init(d->app_name)) {
        go_silent(d, "libnotify could not be initialised");
        return false;
    }
    d->notify_inited = true;
    caps = notify_get_server_caps();
    if (!caps) {
        go_silent(d, "no notification server answers on the session bus");
        return false;
    }
    for (GList *l = caps; l; l = l->next) {
        if (l->data && strcmp(l->data, "body-markup") == 0)
            d->notify_markup = true;
    }
    g_list_free_full(caps, g_free);
    return true;
}

void notes_show(struct helper *d, const struct note *n)
{
    NotifyNotification *nn = NULL;
    GError *error = NULL;
    char *body = NULL;
    static const NotifyUrgency urgency[] = {
        [DESKTOP_URGENCY_LOW] = NOTIFY_URGENCY_LOW,
        [DESKTOP_URGENCY_NORMAL] = NOTIFY_URGENCY_NORMAL,
        [DESKTOP_URGENCY_CRITICAL] = NOTIFY_URGENCY_CRITICAL,
    };

    if (!d->notifications || !ensure_init(d))
        goto out;
    if (n->body)
        body = d->notify_markup ? g_markup_escape_text(n->body, -1) : g_strdup(n->body);
    nn = notify_notification_new(n->summary, body, n->icon);
    notify_notification_set_urgency(nn, urgency[n->urgency]);
    notify_notification_set_timeout(nn, n->timeout_ms == 0 ? NOTIFY_EXPIRES_DEFAULT
                                        : n->timeout_ms < 0 ? NOTIFY_EXPIRES_NEVER
                                                            : n->timeout_ms);
    if (!notify_notification_show(nn, &error)) {
        char why[200];
        snprintf(why, sizeof why, "showing one failed (%.150s)",
                 error && error->message ? error->message : "unknown error");
        go_silent(d, why);
    }
out:
    g_clear_error(&error);
    if (nn)
        g_object_unref(nn);
    g_free(body);
}

void notes_exit(struct helper *d)
{
    if (d->notify_inited) {
        notify_uninit();
        d->notify_inited = false;
    }
}
