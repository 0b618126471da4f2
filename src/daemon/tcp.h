/*
 * tcp.h — the AMP transport over TLS 1.3 on TCP (PROTOCOL.md §8): a libuv
 * TCP listener whose connections run a memory TLS session
 * (src/transport/tls.c) and a frame_reader (src/amp/frame.c), and hand
 * whole request frames to the server core.  It only moves bytes.
 *
 * Back-pressure: a connection stops being read while the core has
 * max_streams of its requests in progress, or while more than
 * TCP_WRITE_QUEUE_MAX bytes wait to be written to it.
 */
#ifndef AMP_TCP_H
#define AMP_TCP_H

#include "server.h"
#include "tls.h"

#include <uv.h>

#define TCP_WRITE_QUEUE_MAX (8u * 1024u * 1024u)

typedef struct tcp_listener tcp_listener;

/* Bind and listen on addr:port (numeric address).  *srv is read when a
 * connection arrives (it may be set after this call, before the loop
 * runs). */
int tcp_listen(uv_loop_t *loop, server **srv, tls_creds *creds,
	       const char *addr, uint16_t port, tcp_listener **l_r,
	       const char **error_r) __attribute__((warn_unused_result));
uint16_t tcp_listener_port(const tcp_listener *l);
/* Stop accepting; existing connections continue. */
void tcp_listener_pause(tcp_listener *l);
/* Close every connection and the listener; frees it once the handles
 * have closed (run the loop). */
void tcp_listener_close(tcp_listener **l);

#endif
