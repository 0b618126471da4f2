"""Priority lanes (issue 5): with a backlog of 5,000 bulk messages being
delivered, a critical message is delivered within its SLA, long before the
backlog drains.  The receiver (aiosmtpd) takes 20 ms per bulk message, so
the backlog needs about 25 s over 4 connections; the critical message must
arrive within smtp_out_lane_sla's critical value (here 5 s) of its 250.
"""
import asyncio
import re
import smtplib
import threading
import time

import pytest

from dnsfixture import dns_server  # noqa: F401
from nodes import free_port, smtp_node

aiosmtpd_controller = pytest.importorskip("aiosmtpd.controller")

BULK = 5000
CONNS = 4


class Receiver:
    def __init__(self):
        self.bulk = 0
        self.critical_at = None
        self.port = free_port()
        self.c = aiosmtpd_controller.Controller(self, hostname="127.0.0.1",
                                                port=self.port)
        self.c.start()

    async def handle_DATA(self, server, session, envelope):
        if re.search(rb"(?im)^Priority:\s*urgent", envelope.original_content):
            self.critical_at = time.monotonic()
        else:
            await asyncio.sleep(0.02)
            self.bulk += 1
        return "250 2.0.0 queued"


def feed(port, start, count):
    with smtplib.SMTP("127.0.0.1", port, local_hostname="app.test") as s:
        for i in range(start, start + count):
            s.sendmail("news@alpha.test", ["reader@example.net"],
                       f"From: news@alpha.test\r\nTo: reader@example.net\r\n"
                       f"Precedence: bulk\r\nSubject: issue {i}\r\n\r\nnews\r\n")


def test_critical_mail_overtakes_a_bulk_backlog(base, dns_server):  # noqa: F811
    dns = dns_server("example.net. 60 IN MX 10 mx.example.net.\n"
                     "mx.example.net. 60 IN A 127.0.0.1\n")
    rcv = Receiver()
    try:
        b, n, u = smtp_node(base, dns_forwarder=dns.forwarder, smtp_out_port=rcv.port,
                            smtp_hostname="mx.alpha.test",
                            smtp_relay_networks="127.0.0.0/8",
                            smtp_out_max_connections=CONNS,
                            smtp_out_dest_concurrency=CONNS,
                            smtp_out_lane_sla="5s 15m 4h", log_level="info")
        threads = [threading.Thread(target=feed, args=(n.smtp_port, k * BULK // 4, BULK // 4))
                   for k in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        time.sleep(1)
        backlog = BULK - rcv.bulk
        assert backlog > 2000, f"the backlog drained too fast to test: {backlog} left"
        with smtplib.SMTP("127.0.0.1", n.smtp_port, local_hostname="app.test") as s:
            s.sendmail("alert@alpha.test", ["oncall@example.net"],
                       "From: alert@alpha.test\r\nTo: oncall@example.net\r\n"
                       "Priority: urgent\r\nSubject: disk full\r\n\r\nnow\r\n")
            acked = time.monotonic()
        deadline = acked + 30
        while rcv.critical_at is None and time.monotonic() < deadline:
            time.sleep(0.01)
        assert rcv.critical_at is not None, "the critical message never arrived"
        took = rcv.critical_at - acked
        left = BULK - rcv.bulk
        print(f"critical delivered {took:.3f} s after its 250, with {left} bulk "
              f"messages still queued")
        assert took < 5.0
        assert left > 1000
    finally:
        rcv.c.stop()
