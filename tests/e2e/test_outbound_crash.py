"""Crash safety of the mail queue (issue 5, TESTING.md Q2 after the 250):
1,000 messages are accepted over SMTP from a relay client (each 250 means
"queued, on disk"), the node is killed with SIGKILL while it delivers them
to a deliberately slow aiosmtpd receiver, and restarted: every accepted
Message-ID must arrive.

Duplicates: a message whose receiver said 250 just before the kill, but
whose outcome the node had not yet committed, is sent again after the
restart (RFC 5321 §6.1 prefers a duplicate to a loss; docs/outbound.md
"At least once").  At most one message per open connection can be in that
window, so the test allows at most smtp_out_max_connections duplicates and
prints how many it saw.

From the 100th delivery on the receiver holds each transaction at the end
of DATA until the kill, so attempts are in flight (their rows leased) when
the node dies, whatever the machine's load; the restarted node must make
those rows due at once, not after smtp_out_lease.
"""
import asyncio
import collections
import re
import smtplib
import time

import pytest

from dnsfixture import dns_server  # noqa: F401
from nodes import free_port, smtp_node

aiosmtpd_controller = pytest.importorskip("aiosmtpd.controller")

N = 1000
CONNS = 8


class SlowReceiver:
    def __init__(self, delay):
        self.delay = delay
        self.open = False           # 451 until opened: the queue fills
        self.ids = collections.Counter()
        self.hold_after = None      # from this many deliveries on, hold
        self.held = 0               # transactions waiting at the end of DATA
        self.killed = False
        self.port = free_port()
        self.c = aiosmtpd_controller.Controller(self, hostname="127.0.0.1",
                                                port=self.port)
        self.c.start()

    async def handle_DATA(self, server, session, envelope):
        if not self.open:
            return "451 4.3.0 not yet"
        await asyncio.sleep(self.delay)
        if self.hold_after is not None and sum(self.ids.values()) >= self.hold_after:
            # keep the node's attempt in flight (its row leased) until the
            # node is killed; what it sent is then not counted as received
            self.held += 1
            while not self.killed:
                await asyncio.sleep(0.01)
            return "421 4.3.0 gone"
        m = re.search(rb"(?im)^Message-ID:\s*(<[^>]+>)", envelope.original_content)
        self.ids[m.group(1).decode() if m else "none"] += 1
        return "250 2.0.0 queued"


def test_kill9_with_1000_queued_loses_nothing(base, dns_server):  # noqa: F811
    dns = dns_server("example.net. 60 IN MX 10 mx.example.net.\n"
                     "mx.example.net. 60 IN A 127.0.0.1\n")
    rcv = SlowReceiver(delay=0.01)
    try:
        b, n, u = smtp_node(base, dns_forwarder=dns.forwarder,
                            smtp_out_port=rcv.port, smtp_hostname="mx.alpha.test",
                            smtp_relay_networks="127.0.0.0/8",
                            smtp_out_max_connections=CONNS,
                            smtp_out_dest_concurrency=CONNS,
                            smtp_out_retry_min="1s", smtp_out_retry_max="2s",
                            log_level="info")
        sent = []
        with smtplib.SMTP("127.0.0.1", n.smtp_port, local_hostname="app.test") as s:
            for i in range(N):
                mid = f"<crash-{i}@alpha.test>"
                s.sendmail("app@alpha.test", [f"user{i % 7}@example.net"],
                           f"From: app@alpha.test\r\nTo: x@example.net\r\n"
                           f"Message-ID: {mid}\r\nSubject: {i}\r\n\r\nbody {i}\r\n")
                sent.append(mid)
        assert sum(rcv.ids.values()) == 0
        n.wait_log(r'deferred=1', count=CONNS)
        # some are delivered now, most are still queued; from the 100th on
        # the receiver holds each attempt, so rows are leased when the node
        # dies (the restart must make them due again at once)
        rcv.hold_after = 100
        rcv.open = True
        deadline = time.monotonic() + 60
        while rcv.held == 0 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert rcv.held > 0, "no delivery attempt in flight"
        before = sum(rcv.ids.values())
        assert 0 < before < N, f"{before} delivered before the kill"
        n.kill9()
        rcv.hold_after = None
        rcv.killed = True
        n.start()
        deadline = time.monotonic() + 120
        while len(rcv.ids) < N and time.monotonic() < deadline:
            time.sleep(0.1)
        missing = set(sent) - set(rcv.ids)
        assert not missing, f"{len(missing)} acknowledged messages lost, e.g. {sorted(missing)[:5]}"
        dups = {k: v for k, v in rcv.ids.items() if v > 1}
        print(f"delivered before the kill: {before}; duplicates after the restart: "
              f"{sum(v - 1 for v in dups.values())}")
        assert sum(v - 1 for v in dups.values()) <= CONNS, dups
        assert set(rcv.ids) == set(sent)
        n.wait_log(r'rows leased before a restart are due again')
    finally:
        rcv.c.stop()
