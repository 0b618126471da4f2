"""Outbound DNS (src/dns, issue 5) through tests/tools/dns-query-tool,
against loopback servers from dnsfixture.py: TESTING.md row E5 and the
DNSSEC results DANE (RFC 7672) builds on.

E5 against tests/tools/dnsserver.py (one zone, ZONE below): null MX
(RFC 7505); an MX host that is a CNAME, and a domain that is one; an MX
naming an IP literal (returned as a host name: refusing it is the
caller's job); no MX -> NODATA and the domain's own addresses; SERVFAIL ->
TEMPFAIL; NXDOMAIN; a server that never answers -> TEMPFAIL "timeout"
within the timeout; TXT strings over 255 octets joined, a TXT too large
for UDP fetched over TCP, a TXT record with a NUL skipped; MX sorted by
preference with equal preferences shuffled; AAAA before A; TLSA decoded;
names refused before any query.  Lifetimes (what the sanitizer build
checks): many queries at once, cancelling them, freeing the resolver with
queries outstanding and from inside a callback, new queries started from
inside a callback.

DNSSEC against a private unbound serving a zone signed by ldns-signzone,
with its DS as libunbound's trust anchor: MX, A/AAAA, TLSA and NXDOMAIN
secure; the same without the anchor insecure; tampered, unsigned and
expired variants BOGUS with a reason.
"""
import time

import pytest

from dnsfixture import dns_query, dns_server, dnssec_zone  # noqa: F401

LONG = "x" * 255
ZONE = f"""$ORIGIN example.org.
$TTL 300
@            IN SOA ns.example.org. hostmaster.example.org. 1 3600 600 86400 300
nullmx       IN MX 0 .
cnamemx      IN MX 10 alias.example.org.
alias        IN CNAME real.example.org.
real         IN A 192.0.2.10
real         IN AAAA 2001:db8::10
cnamedom     IN CNAME target.example.org.
target       IN MX 5 mx.target.example.org.
iplit        IN MX 10 192.0.2.1.
nomx         IN A 192.0.2.20
multi        IN MX 20 mx20.example.org.
multi        IN MX 10 mx10a.example.org.
multi        IN MX 10 mx10b.example.org.
multi        IN MX 30 mx30.example.org.
multi        IN MX 10 mx10c.example.org.
mixed        IN MX 0 .
mixed        IN MX 10 mx.mixed.example.org.
dual         IN AAAA 2001:db8::2
dual         IN A 192.0.2.2
dual         IN AAAA 2001:db8::1
dual         IN A 192.0.2.1
v4only       IN A 192.0.2.4
v6only       IN AAAA 2001:db8::6
sf           SERVFAIL
sfmx         IN MX 10 sf.example.org.
to           TIMEOUT
follow       IN MX 10 real.example.org.
follow       IN MX 20 alias.example.org.
follow       IN MX 30 sf.example.org.
follow       IN MX 40 gone.example.org.
follow       IN MX 50 192.0.2.1.
txt          IN TXT "{LONG}" "{"y" * 100}" "tail end"
txt          IN TXT "second record"
nul          IN TXT "a\\000b"
nul          IN TXT "clean"
onlynul      IN TXT "x\\000"
big          IN TXT {" ".join('"' + c * 255 + '"' for c in "abcdef")}
_dmarc       IN TXT "v=DMARC1; p=reject"
_25._tcp.real IN TLSA 3 1 1 0123456789ABCDEF0123456789ABCDEF0123456789ABCDEF0123456789ABCDEF
_25._tcp.real IN TLSA 2 0 0 308201
_465._tcp.real IN TLSA 3 1 2 {"AB" * 64}
"""


@pytest.fixture
def srv(dns_server):  # noqa: F811 - the fixture imported above
    return dns_server(ZONE)


def q(srv, kind, name, **kw):
    a = dns_query(kind, name, srv.forwarder, **kw)
    assert a.rc == 0, a
    assert "Sanitizer" not in a.stderr and "runtime error" not in a.stderr, a.stderr
    return a


# ------------------------------------------------------------------ MX


def test_null_mx(srv):
    a = q(srv, "mx", "nullmx.example.org")
    assert (a.status, a.null_mx, a.mx) == ("OK", True, [(0, ".")])
    assert not a.secure


def test_null_mx_among_others_is_dropped(srv):
    # RFC 7505 §3: a null MX must be alone; "." names no host
    a = q(srv, "mx", "mixed.example.org")
    assert (a.status, a.null_mx, a.mx) == ("OK", False, [(10, "mx.mixed.example.org")])


def test_mx_host_is_cname_and_resolves(srv):
    a = q(srv, "mx", "cnamemx.example.org")
    assert (a.status, a.mx) == ("OK", [(10, "alias.example.org")])
    b = q(srv, "addr", "alias.example.org")
    assert (b.status, b.addr) == ("OK", ["2001:db8::10", "192.0.2.10"])


def test_domain_is_cname(srv):
    a = q(srv, "mx", "cnamedom.example.org")
    assert (a.status, a.mx) == ("OK", [(5, "mx.target.example.org")])


def test_mx_ip_literal_is_a_host_name(srv):
    a = q(srv, "mx", "iplit.example.org")
    assert (a.status, a.mx) == ("OK", [(10, "192.0.2.1")])


def test_no_mx_is_nodata_then_addresses(srv):
    a = q(srv, "mx", "nomx.example.org")
    assert (a.status, a.mx, a.null_mx) == ("NODATA", [], False)
    b = q(srv, "addr", "nomx.example.org")
    assert (b.status, b.addr) == ("OK", ["192.0.2.20"])


def test_servfail_is_tempfail(srv):
    a = q(srv, "mx", "sf.example.org")
    assert (a.status, a.why) == ("TEMPFAIL", "SERVFAIL")
    # an MX host whose addresses fail: TEMPFAIL too
    assert q(srv, "mx", "sfmx.example.org").mx == [(10, "sf.example.org")]
    assert q(srv, "addr", "sf.example.org").status == "TEMPFAIL"


def test_nxdomain(srv):
    a = q(srv, "mx", "nowhere.example.org")
    assert (a.status, a.why, a.mx) == ("NXDOMAIN", None, [])
    assert q(srv, "addr", "nowhere.example.org").status == "NXDOMAIN"
    assert q(srv, "tlsa", "nowhere.example.org").status == "NXDOMAIN"
    assert q(srv, "txt", "nowhere.example.org").status == "NXDOMAIN"


def test_empty_non_terminal_is_nodata(srv):
    # _tcp.real exists only as the parent of _25._tcp.real
    assert q(srv, "txt", "_tcp.real.example.org").status == "NODATA"


@pytest.mark.parametrize("kind", ["mx", "addr", "tlsa", "txt"])
def test_timeout_is_tempfail_within_the_timeout(srv, kind):
    t0 = time.monotonic()
    a = q(srv, kind, "to.example.org", timeout=800)
    wall = time.monotonic() - t0
    assert (a.status, a.why) == ("TEMPFAIL", "timeout")
    assert 790 <= a.elapsed <= 1300, a.elapsed
    assert wall < 5, wall
    assert "to.example.org." in srv.log()


def test_multiple_mx_sorted_equal_preferences_shuffled(srv):
    orders = set()
    for _ in range(24):
        a = q(srv, "mx", "multi.example.org")
        assert a.status == "OK"
        prefs = [p for p, _ in a.mx]
        assert prefs == [10, 10, 10, 20, 30]
        assert sorted(h for _, h in a.mx[:3]) == [
            "mx10a.example.org", "mx10b.example.org", "mx10c.example.org"]
        assert [h for _, h in a.mx[3:]] == ["mx20.example.org", "mx30.example.org"]
        orders.add(tuple(h for _, h in a.mx[:3]))
    # 24 runs with 6 orders each time: all equal by chance has p = 6^-23
    assert len(orders) > 1


# ------------------------------------------------------------- addresses


def test_aaaa_before_a(srv):
    a = q(srv, "addr", "dual.example.org")
    assert a.status == "OK"
    assert sorted(a.addr[:2]) == ["2001:db8::1", "2001:db8::2"]
    assert sorted(a.addr[2:]) == ["192.0.2.1", "192.0.2.2"]


def test_one_family_only(srv):
    assert q(srv, "addr", "v4only.example.org").addr == ["192.0.2.4"]
    assert q(srv, "addr", "v6only.example.org").addr == ["2001:db8::6"]


def test_name_without_addresses_is_nodata(srv):
    a = q(srv, "addr", "multi.example.org")
    assert (a.status, a.addr) == ("NODATA", [])


# ------------------------------------------------------------------- TXT


def test_txt_split_strings_joined(srv):
    a = q(srv, "txt", "txt.example.org")
    assert a.status == "OK"
    assert sorted(a.txt) == sorted([LONG + "y" * 100 + "tail end", "second record"])


def test_txt_larger_than_udp_comes_over_tcp(srv):
    a = q(srv, "txt", "big.example.org")
    assert a.status == "OK"
    assert a.txt == ["".join(c * 255 for c in "abcdef")]
    log = srv.log()
    assert "udp big.example.org. TXT NOERROR TC" in log
    assert "tcp big.example.org. TXT NOERROR" in log


def test_txt_with_nul_skipped(srv):
    a = q(srv, "txt", "nul.example.org")
    assert (a.status, a.txt) == ("OK", ["clean"])
    b = q(srv, "txt", "onlynul.example.org")
    assert (b.status, b.txt) == ("NODATA", [])
    assert "NUL" in b.why


def test_txt_service_labels(srv):
    a = q(srv, "txt", "_dmarc.example.org")
    assert a.txt == ["v=DMARC1; p=reject"]


# ------------------------------------------------------------------ TLSA


def test_tlsa_decoded(srv):
    a = q(srv, "tlsa", "real.example.org")
    assert a.status == "OK"
    assert sorted(a.tlsa) == sorted([
        (3, 1, 1, "0123456789ABCDEF" * 4),
        (2, 0, 0, "308201"),
    ])
    b = q(srv, "tlsa", "real.example.org", port=465)
    assert b.tlsa == [(3, 1, 2, "AB" * 64)]
    c = q(srv, "tlsa", "nomx.example.org")
    assert c.status == "NXDOMAIN"


# ------------------------------------------------------------ bad names


@pytest.mark.parametrize("kind,name", [
    ("mx", "a..example.org"), ("mx", "example.org."), ("mx", ""),
    ("mx", "-a.example.org"), ("mx", "a-.example.org"),
    ("mx", "x" * 64 + ".org"), ("mx", ".".join(["a" * 63] * 4)),
    ("mx", "_dmarc.example.org"), ("addr", "a b.example.org"),
    ("addr", "a\\.b"), ("txt", "ü.example.org"),
    ("tlsa", ".".join(["a" * 63] * 4)[:245]),
])
def test_bad_names_refused(srv, kind, name):
    a = dns_query(kind, name, srv.forwarder)
    assert a.rc == 1 and a.stdout.strip() == "refused", a


def test_longest_name_accepted(srv):
    name = ".".join(["a" * 63] * 3 + ["b" * 61])
    assert len(name) == 253
    assert q(srv, "mx", name).status == "NXDOMAIN"
    a = dns_query("mx", name + "b", srv.forwarder)
    assert a.rc == 1


# ------------------------------------------------------------- lifetimes


def test_many_queries_at_once(srv):
    a = q(srv, "addr", "dual.example.org", args=["--repeat", "200"])
    assert a.status == "OK" and len(a.addr) == 4
    assert "repeat 200 same" in a.lines


def test_free_with_queries_outstanding(srv):
    a = q(srv, "addr", "to.example.org", timeout=5000,
          args=["--repeat", "20", "--free-after", "300"])
    assert a.status is None
    assert a.lines == ["freed 20 outstanding"]


def test_cancel_outstanding(srv):
    a = q(srv, "mx", "to.example.org", timeout=5000,
          args=["--repeat", "10", "--cancel-after", "300"])
    assert a.status is None
    assert a.lines == ["cancelled 10"]


def test_free_inside_a_callback(srv):
    # the first answer frees the resolver while the other 50 are still
    # outstanding, some of them in the same ub_process batch
    a = q(srv, "txt", "txt.example.org", args=["--repeat", "50", "--free-in-callback"])
    assert a.status == "OK"
    assert a.lines == ["freed in callback"]


def test_free_inside_a_timeout_callback(srv):
    a = q(srv, "mx", "to.example.org", timeout=300,
          args=["--repeat", "5", "--free-in-callback"])
    assert (a.status, a.why) == ("TEMPFAIL", "timeout")
    assert a.lines == ["freed in callback"]


def test_queries_started_inside_a_callback(srv):
    # what the outbound driver does: the MX answer starts the address
    # lookups of every host from inside its callback
    a = q(srv, "mx", "follow.example.org", args=["--follow"])
    assert a.status == "OK" and len(a.mx) == 5
    got = {}
    for line in a.lines:
        f = line.split()
        assert f[0] == "follow", line
        got[f[1]] = f[2:]
    assert got == {
        "real.example.org": ["OK", "2001:db8::10", "192.0.2.10"],
        "alias.example.org": ["OK", "2001:db8::10", "192.0.2.10"],
        "sf.example.org": ["TEMPFAIL"],
        "gone.example.org": ["NXDOMAIN"],
        "192.0.2.1": ["NXDOMAIN"],
    }


def test_unreachable_forwarder(srv):
    from nodes import free_port
    a = dns_query("mx", "example.org", f"127.0.0.1@{free_port()}", timeout=700)
    assert a.rc == 0 and a.status == "TEMPFAIL", a


@pytest.mark.parametrize("fwd", ["not-an-address", "127.0.0.1@99999", "127.0.0.1@",
                                 "127.0.0.1@0", "127.0.0.1@53x", "@53", "::1@65536"])
def test_bad_forwarder(fwd):
    a = dns_query("mx", "example.org", fwd)
    assert a.rc == 1 and "forwarder" in a.stderr, a


def test_good_forwarder_spellings(srv):
    port = srv.forwarder.split("@")[1]
    a = dns_query("mx", "nullmx.example.org", f"127.0.0.1@{port}")
    assert a.null_mx
    # IPv6 and the default port are accepted (whatever answers there)
    for fwd in ("::1@1", "127.0.0.1"):
        a = dns_query("mx", "example.org", fwd, timeout=300)
        assert a.rc == 0 and a.status is not None, a


def test_bad_trust_anchor(tmp_path):
    a = dns_query("mx", "example.org", "127.0.0.1@53", ta="/nonexistent/ta")
    assert a.rc == 1 and "trust anchor" in a.stderr, a
    bad = tmp_path / "ta"
    bad.write_text("this is not a zone file\n")
    a = dns_query("mx", "example.org", "127.0.0.1@53", ta=bad)
    assert a.rc == 1 and "trust anchor" in a.stderr, a


# --------------------------------------------------------------- DNSSEC

SIGNED = """@ IN SOA ns hostmaster 1 3600 600 86400 300
@ IN NS ns
ns IN A 127.0.0.1
@ IN MX 10 mx
mx IN A 192.0.2.25
mx IN AAAA 2001:db8::25
_25._tcp.mx IN TLSA 3 1 1 0123456789ABCDEF0123456789ABCDEF0123456789ABCDEF0123456789ABCDEF
txt IN TXT "signed text"
"""
ORIGIN = "example.net"


def test_dnssec_secure(dnssec_zone):  # noqa: F811
    z = dnssec_zone(ORIGIN, SIGNED)
    mx = dns_query("mx", ORIGIN, z.forwarder, ta=z.trust_anchor)
    assert (mx.status, mx.secure, mx.mx) == ("OK", True, [(10, "mx.example.net")]), mx
    addr = dns_query("addr", "mx.example.net", z.forwarder, ta=z.trust_anchor)
    assert (addr.status, addr.secure, addr.addr) == ("OK", True, ["2001:db8::25", "192.0.2.25"])
    tlsa = dns_query("tlsa", "mx.example.net", z.forwarder, ta=z.trust_anchor)
    assert (tlsa.status, tlsa.secure) == ("OK", True)
    assert tlsa.tlsa == [(3, 1, 1, "0123456789ABCDEF" * 4)]
    txt = dns_query("txt", "txt.example.net", z.forwarder, ta=z.trust_anchor)
    assert (txt.status, txt.secure, txt.txt) == ("OK", True, ["signed text"])
    # authenticated denial (NSEC3): no such name, no such type
    nx = dns_query("tlsa", "other.example.net", z.forwarder, ta=z.trust_anchor)
    assert (nx.status, nx.secure) == ("NXDOMAIN", True)
    nodata = dns_query("mx", "mx.example.net", z.forwarder, ta=z.trust_anchor)
    assert (nodata.status, nodata.secure) == ("NODATA", True)
    # without the trust anchor nothing is secure
    plain = dns_query("tlsa", "mx.example.net", z.forwarder)
    assert (plain.status, plain.secure) == ("OK", False)


def test_dnssec_tampered_is_bogus(dnssec_zone):  # noqa: F811
    z = dnssec_zone(ORIGIN, SIGNED, "tampered")
    addr = dns_query("addr", "mx.example.net", z.forwarder, ta=z.trust_anchor)
    assert (addr.status, addr.secure, addr.addr) == ("BOGUS", False, []), addr
    assert "signature" in addr.why
    # what was not changed still validates
    tlsa = dns_query("tlsa", "mx.example.net", z.forwarder, ta=z.trust_anchor)
    assert (tlsa.status, tlsa.secure) == ("OK", True)


def test_dnssec_unsigned_but_anchored_is_bogus(dnssec_zone):  # noqa: F811
    z = dnssec_zone(ORIGIN, SIGNED, "unsigned")
    for kind, name in (("mx", ORIGIN), ("tlsa", "mx.example.net"), ("addr", "mx.example.net")):
        a = dns_query(kind, name, z.forwarder, ta=z.trust_anchor)
        assert (a.status, a.secure) == ("BOGUS", False), a
        assert "DNSKEY" in a.why


def test_dnssec_expired_is_bogus(dnssec_zone):  # noqa: F811
    z = dnssec_zone(ORIGIN, SIGNED, "expired")
    a = dns_query("tlsa", "mx.example.net", z.forwarder, ta=z.trust_anchor)
    assert (a.status, a.secure) == ("BOGUS", False), a
    assert "expired" in a.why
