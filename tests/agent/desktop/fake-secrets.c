/*
 * A Secret Service that never answers: it owns org.freedesktop.secrets on
 * the session bus and drops every method call addressed to it, the way a
 * keyring that waits for an unlock prompt nobody sees behaves.  The
 * desktop tests start it, wait for "ready" on stdout, and kill it.
 */
#include <stdio.h>

#include <gio/gio.h>

static GDBusMessage *swallow(GDBusConnection *c, GDBusMessage *m, gboolean incoming,
                             gpointer data)
{
    if (incoming && g_dbus_message_get_message_type(m) == G_DBUS_MESSAGE_TYPE_METHOD_CALL) {
        g_object_unref(m);
        return NULL;
    }
    return m;
}

int main(void)
{
    GError *error = NULL;
    GDBusConnection *c = g_bus_get_sync(G_BUS_TYPE_SESSION, NULL, &error);
    GVariant *r;

    if (!c) {
        fprintf(stderr, "fake-secrets: %s\n", error->message);
        return 1;
    }
    r = g_dbus_connection_call_sync(c, "org.freedesktop.DBus", "/org/freedesktop/DBus",
                                    "org.freedesktop.DBus", "RequestName",
                                    g_variant_new("(su)", "org.freedesktop.secrets", 4u),
                                    G_VARIANT_TYPE("(u)"), G_DBUS_CALL_FLAGS_NONE, -1, NULL,
                                    &error);
    if (!r) {
        fprintf(stderr, "fake-secrets: %s\n", error->message);
        return 1;
    }
    g_variant_unref(r);
    /* Installed only now, so the RequestName reply above was not eaten. */
    g_dbus_connection_add_filter(c, swallow, NULL, NULL);
    printf("ready\n");
    fflush(stdout);
    for (;;)
        g_main_context_iteration(NULL, TRUE);
}
