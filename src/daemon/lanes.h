/*
 * lanes.h — the mail queue lane chosen by configuration for a sender:
 * smtp_out_critical_senders and smtp_out_bulk_senders list envelope
 * sender addresses (user@domain) or whole domains (@domain) whose mail
 * goes to that lane, before any header or envelope lane is looked at
 * (docs/outbound.md "Lanes").  Built at start; read by any thread.
 */
#ifndef AMP_LANES_H
#define AMP_LANES_H

#include "config.h"

#include <stdbool.h>

typedef struct lanes lanes;

/* 0, or -1 with err filled (an entry that is neither user@domain nor
 * @domain). */
int lanes_new(const cfg *conf, lanes **l_r, char *err, size_t err_size)
	__attribute__((warn_unused_result));
void lanes_free(lanes **l);

/* The lane configured for sender (MAILQ_CRITICAL or MAILQ_BULK), or -1
 * when none is (then the message's own choice stands).  NULL l: -1. */
int lanes_for_sender(const lanes *l, const char *sender);

#endif
