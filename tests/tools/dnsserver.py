#!/usr/bin/python3
"""dnsserver.py — a small authoritative DNS server on 127.0.0.1 for tests
(issue 5: tests/e2e/test_dns.py and tests/e2e/dnsfixture.py use it).

    dnsserver.py --port P --zone FILE [--pidfile F]

Answers over UDP and TCP on 127.0.0.1:P from the records in FILE, a
zone-file-like text read with dnslib (`name TTL IN TYPE rdata` lines,
$ORIGIN and $TTL, parentheses), plus two pseudo records for faults:

    name SERVFAIL     answer SERVFAIL for any type asked at that name
                      or at a name under it (_25._tcp.name too)
    name TIMEOUT      never answer a question about that name or a name
                      under it

Like an authoritative server: a name with records of the type asked gets
them (AA set); a CNAME is followed within the zone (the target's records
follow it in the answer, up to 8 links); a name that exists (it owns
records, or is an ancestor of one that does) without the type gets
NOERROR with no answer; any other name NXDOMAIN.  Negative answers carry
the SOA of the closest enclosing SOA in the zone, or a made-up one owned
by the name's last label.  Any record type dnslib knows can be served
(MX, A, AAAA, CNAME, TXT with several strings, TLSA, ...).

UDP answers larger than the client's EDNS size (512 without EDNS) are
sent truncated (TC, no records), so the client retries over TCP.  RA is
set, so resolvers may use this server as a forwarder.  DNSSEC is not
done here: RRSIGs are not matched to answers (tests/e2e/dnsfixture.py
serves signed zones with a private unbound instead).

Prints "ready" on stdout (and writes the pidfile) once both sockets
listen; each query is logged on stderr as "PROTO NAME TYPE RCODE[ TC]".
Exits 0 on SIGTERM or SIGINT.
"""
import argparse
import os
import signal
import socket
import struct
import sys
import threading

from dnslib import DNSRecord, EDNS0, QTYPE, RCODE, RR, SOA
from dnslib.dns import ZoneParser

MAX_CHAIN = 8


def norm(name: str) -> str:
    name = name.lower()
    return name if name.endswith(".") else name + "."


class Zone:
    def __init__(self, text: str):
        self.rrs = {}          # name -> {qtype: [RR]}
        self.servfail = set()
        self.timeout = set()
        self.exists = set()
        self.soas = {}         # owner -> RR
        zone_lines = []
        origin = ""
        for line in text.splitlines():
            words = line.split(";", 1)[0].split()
            if len(words) == 2 and words[0] == "$ORIGIN":
                origin = norm(words[1])
            if len(words) == 2 and words[1] in ("SERVFAIL", "TIMEOUT"):
                name = words[0]
                if name == "@":
                    name = origin
                elif not name.endswith("."):
                    name = name + "." + origin if origin else name
                (self.servfail if words[1] == "SERVFAIL" else self.timeout).add(norm(name))
                continue
            zone_lines.append(line)
        for rr in ZoneParser("\n".join(zone_lines) + "\n"):
            name = norm(str(rr.rname))
            self.rrs.setdefault(name, {}).setdefault(rr.rtype, []).append(rr)
            if rr.rtype == QTYPE.SOA:
                self.soas[name] = rr
        for name in list(self.rrs) + list(self.servfail) + list(self.timeout):
            labels = name.rstrip(".").split(".")
            for i in range(len(labels)):
                self.exists.add(".".join(labels[i:]) + ".")

    @staticmethod
    def under(name: str, names: set) -> bool:
        labels = name.rstrip(".").split(".")
        return any(".".join(labels[i:]) + "." in names for i in range(len(labels)))

    def soa_for(self, name: str) -> RR:
        labels = name.rstrip(".").split(".")
        for i in range(len(labels)):
            owner = ".".join(labels[i:]) + "."
            if owner in self.soas:
                return self.soas[owner]
        top = (labels[-1] + ".") if labels and labels[-1] else "."
        return RR(top, QTYPE.SOA, ttl=60,
                  rdata=SOA("ns.invalid.", "hostmaster.invalid.", (1, 3600, 600, 86400, 60)))

    def answer(self, q: DNSRecord):
        """The reply to q, or None to stay silent."""
        reply = q.reply(ra=1, aa=1)
        reply.header.rd = q.header.rd
        qname, qtype = norm(str(q.q.qname)), q.q.qtype
        name = qname
        for _ in range(MAX_CHAIN):
            if self.under(name, self.timeout):
                return None
            if self.under(name, self.servfail):
                reply.header.rcode = RCODE.SERVFAIL
                return reply
            types = self.rrs.get(name, {})
            if qtype == QTYPE.ANY and types:
                for rrs in types.values():
                    for rr in rrs:
                        reply.add_answer(rr)
                return reply
            if qtype in types:
                for rr in types[qtype]:
                    reply.add_answer(rr)
                return reply
            if QTYPE.CNAME in types and qtype != QTYPE.CNAME:
                cname = types[QTYPE.CNAME][0]
                reply.add_answer(cname)
                name = norm(str(cname.rdata.label))
                continue
            if name not in self.exists:
                reply.header.rcode = RCODE.NXDOMAIN
            reply.add_auth(self.soa_for(name))
            return reply
        return reply  # a chain too long: what was found so far


def edns_size(q: DNSRecord):
    for rr in q.ar:
        if rr.rtype == QTYPE.OPT:
            return max(512, min(rr.rclass, 4096))
    return None


def respond(zone: Zone, data: bytes, proto: str, udp: bool):
    try:
        q = DNSRecord.parse(data)
    except Exception as e:  # noqa: BLE001 - any undecodable packet
        print(f"{proto} undecodable: {e}", file=sys.stderr, flush=True)
        return None
    if not q.questions:
        return None
    reply = zone.answer(q)
    qn, qt = str(q.q.qname), QTYPE.get(q.q.qtype)
    if reply is None:
        print(f"{proto} {qn} {qt} (no answer)", file=sys.stderr, flush=True)
        return None
    size = edns_size(q)
    if size is not None:
        reply.add_ar(EDNS0(udp_len=1232))
    wire = reply.pack()
    tc = ""
    if udp and len(wire) > (size or 512):
        short = q.reply(ra=1, aa=1)
        short.header.rd = q.header.rd
        short.header.tc = 1
        short.header.rcode = reply.header.rcode
        if size is not None:
            short.add_ar(EDNS0(udp_len=1232))
        wire = short.pack()
        tc = " TC"
    print(f"{proto} {qn} {qt} {RCODE.get(reply.header.rcode)}{tc}",
          file=sys.stderr, flush=True)
    return wire


def serve_udp(zone: Zone, sock: socket.socket):
    while True:
        try:
            data, peer = sock.recvfrom(65535)
        except OSError:
            return
        wire = respond(zone, data, "udp", True)
        if wire is not None:
            try:
                sock.sendto(wire, peer)
            except OSError:
                pass


def recv_exact(conn: socket.socket, n: int) -> bytes:
    buf = b""
    while len(buf) < n:
        chunk = conn.recv(n - len(buf))
        if not chunk:
            raise EOFError
        buf += chunk
    return buf


def serve_tcp_conn(zone: Zone, conn: socket.socket):
    with conn:
        conn.settimeout(30)
        try:
            while True:
                (n,) = struct.unpack("!H", recv_exact(conn, 2))
                wire = respond(zone, recv_exact(conn, n), "tcp", False)
                if wire is not None:
                    conn.sendall(struct.pack("!H", len(wire)) + wire)
        except (EOFError, OSError):
            return


def serve_tcp(zone: Zone, sock: socket.socket):
    while True:
        try:
            conn, _ = sock.accept()
        except OSError:
            return
        threading.Thread(target=serve_tcp_conn, args=(zone, conn), daemon=True).start()


def main():
    ap = argparse.ArgumentParser(description="authoritative test DNS server on 127.0.0.1")
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--zone", required=True)
    ap.add_argument("--pidfile")
    a = ap.parse_args()
    with open(a.zone, encoding="utf-8") as f:
        zone = Zone(f.read())

    udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    udp.bind(("127.0.0.1", a.port))
    tcp = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    tcp.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    tcp.bind(("127.0.0.1", a.port))
    tcp.listen(16)

    stop = threading.Event()

    def on_signal(signum, frame):
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    for target, sock in ((serve_udp, udp), (serve_tcp, tcp)):
        threading.Thread(target=target, args=(zone, sock), daemon=True).start()
    if a.pidfile:
        with open(a.pidfile + ".tmp", "w") as f:
            f.write(f"{os.getpid()}\n")
        os.rename(a.pidfile + ".tmp", a.pidfile)
    print("ready", flush=True)
    while not stop.wait(0.5):
        pass
    udp.close()
    tcp.close()
    if a.pidfile:
        try:
            os.unlink(a.pidfile)
        except OSError:
            pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
