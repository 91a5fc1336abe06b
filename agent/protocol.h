/*
 * The wire contract between spell-agent and its clients (the spell command
 * line and spell-portal), as docs/agent.md describes it.
 *
 * Clients connect to the agent's Unix socket and exchange JSON-RPC 2.0
 * messages, one per line, in both directions: requests and answers, and
 * from the agent "event" notifications once a client subscribed.  Every
 * connection starts with agent.hello, which carries the protocol version
 * below; the agent answers any other first method with
 * AGENT_ERR_HELLO_FIRST and a differing version with
 * AGENT_ERR_PROTOCOL_MISMATCH.
 *
 * Bump AGENT_PROTOCOL_VERSION if these change: a method's name, its
 * parameters or results, the local cast object, the notification kinds or
 * the error codes.  Adding an optional field to a result is not a change.
 */
#ifndef AGENT_PROTOCOL_H
#define AGENT_PROTOCOL_H

#define AGENT_PROTOCOL_VERSION 1

/* One message, without its newline, is at most this many bytes. */
#define AGENT_MAX_MESSAGE (1024 * 1024)
/* Requests one connection may have waiting for an answer. */
#define AGENT_MAX_OUTSTANDING 64
/* Connections the agent serves at once; more wait in the listen backlog. */
#define AGENT_MAX_CLIENTS 128
/* Notifications waiting for a subscriber that does not read; past this it
 * is disconnected. */
#define AGENT_MAX_PENDING_EVENTS (256 * 1024)

/* Standard JSON-RPC 2.0 codes. */
#define AGENT_ERR_PARSE (-32700)
#define AGENT_ERR_INVALID_REQUEST (-32600)
#define AGENT_ERR_METHOD_NOT_FOUND (-32601)
#define AGENT_ERR_INVALID_PARAMS (-32602)
#define AGENT_ERR_INTERNAL (-32603)

/* Agent codes. */
#define AGENT_ERR_PROTOCOL_MISMATCH (-32001)
#define AGENT_ERR_HELLO_FIRST (-32002)
#define AGENT_ERR_TOO_LARGE (-32003)
#define AGENT_ERR_SIGNED_OUT (-32010)
#define AGENT_ERR_KEYRING (-32011)
#define AGENT_ERR_NO_SUCH_CAST (-32020)
#define AGENT_ERR_SERVER_REFUSED (-32030)
#define AGENT_ERR_UNREACHABLE (-32031)
#define AGENT_ERR_SHUTTING_DOWN (-32040)

#endif
