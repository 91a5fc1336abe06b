/*
 * A desktop helper that misbehaves, for the daemon side's tests: started
 * by desktop_start() in place of spell-agent-desktop (helper_path), it
 * reads WIRE_HELLO from its descriptor and then does what
 * SPELL_TEST_FAKE_HELPER says:
 *
 *   garbage       answers a credential request with seven bytes of junk
 *   oversize      answers with a packet larger than WIRE_MSG_MAX
 *   badid         answers with a well-formed result for another request
 *   unterminated  answers with a result whose token fills its array
 *   badrc         answers with an rc no part of the module returns
 *   stall         reads nothing more (so the socket fills), and leaves when
 *                 the daemon closes its end
 */
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "desktop-int.h"

static unsigned char buf[WIRE_MSG_MAX];

int main(void)
{
    const char *mode = getenv("SPELL_TEST_FAKE_HELPER");
    int fd = DESKTOP_HELPER_FD;
    long n;

    if (!mode)
        return 2;
    if (wire_recv(fd, buf, false) <= 0 || wire_type_of(buf, sizeof(struct wire_hello)) != WIRE_HELLO)
        return 1;
    if (strcmp(mode, "stall") == 0) {
        struct pollfd p = { .fd = fd, .events = 0 };
        while (poll(&p, 1, -1) >= 0 && !(p.revents & (POLLHUP | POLLERR)))
            ;
        return 0;
    }
    while ((n = wire_recv(fd, buf, false)) > 0) {
        struct wire_result r = { .h = { WIRE_RESULT, WIRE_VERSION } };
        const struct wire_cred *c = (const struct wire_cred *)buf;

        if (wire_type_of(buf, (size_t)n) != WIRE_CRED)
            continue;
        r.id = c->id;
        if (strcmp(mode, "garbage") == 0) {
            if (wire_send(fd, "\x01\x02junk", 7) != 0)
                return 1;
            continue;
        }
        if (strcmp(mode, "oversize") == 0) {
            static unsigned char big[WIRE_MSG_MAX + 100];
            memcpy(big, &r, sizeof r);
            if (wire_send(fd, big, sizeof big) != 0)
                return 1;
            continue;
        }
        if (strcmp(mode, "badid") == 0)
            r.id = c->id + 7;
        else if (strcmp(mode, "unterminated") == 0)
            memset(r.token, 'k', sizeof r.token);
        else if (strcmp(mode, "badrc") == 0)
            r.rc = -12345;
        if (wire_send(fd, &r, sizeof r) != 0)
            return 1;
    }
    return 0;
}
