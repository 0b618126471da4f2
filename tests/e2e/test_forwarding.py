"""Forwarded mail (issue 7): ARC sealing and SRS, the chain
alpha -> beta -> legacy receiver, and bounces back along it.

Two real nodes, alpha.example.net and beta.example.net, each with an SMTP
listener, an RSA DKIM key (`amp dkim keygen`; ARC is rsa-sha256 only in
dkimpy and Mail::DKIM) and its dns_forwarder on ONE loopback zone
(dnsfixture.DnsServer) with both nodes' key records and SPF records for
the nodes and the legacy sender's domain.  virtual_alias_maps: on alpha
x@alpha.example.net -> y@beta.example.net, on beta y@beta.example.net ->
z@legacy.example.org; transport_maps route beta.example.net (on alpha),
alpha.example.net and legacy.example.org (on beta), sender.example.org
(on alpha, for the returning bounce) to 127.0.0.1 ports.  The legacy
receivers are aiosmtpd servers (test_outbound.Receiver).

What is shown:
  - a dkimpy-signed message from a@sender.example.org (smtplib) to
    x@alpha reaches z@legacy with ARC sets i=1 (d=alpha) and i=2
    (d=beta); python3-dkim's arc_verify says cv=pass with the zone's
    keys, and so does Mail::DKIM's ARC verifier (Perl, key lookups to the
    same zone); the original DKIM signature still verifies (dkimpy); the
    envelope sender the receiver sees is beta's SRS1 address (alpha's
    SRS0 inside), and beta's AAR records alpha's seal as arc=pass;
  - the receiver refuses a second message (550 at RCPT): beta's DSN goes
    to its SRS1 sender reversed, i.e. to alpha's SRS0 address; alpha
    reverses that at RCPT and sends the DSN on to a@sender.example.org,
    whose mailbox (another receiver) gets it with the null sender;
  - a forged SRS address (a bad hash) and a well-formed one of another
    key are refused at RCPT with 550 5.1.1.
"""
import re
import smtplib
import subprocess
import tempfile
from pathlib import Path

import pytest

from conftest import AMP_BIN
from dnsfixture import dns_server  # noqa: F401 - the fixture
from nodes import Node, free_port
from test_outbound import Receiver

dkim = pytest.importorskip("dkim")

ALPHA, BETA = "alpha.example.net", "beta.example.net"
SENDER_DOM, LEGACY_DOM = "sender.example.org", "legacy.example.org"
SEL = "s1"

# Mail::DKIM's ARC verifier on one file, key lookups to 127.0.0.1:PORT
# (as tests/e2e/test_arc_oracle.py); prints "result (detail)".
PERL_ARC = r"""
use strict; use warnings;
use Mail::DKIM::ARC::Verifier; use Net::DNS::Resolver;
my ($file, $port) = @ARGV;
Mail::DKIM::DNS::resolver(Net::DNS::Resolver->new(
    nameservers => ['127.0.0.1'], port => $port, recurse => 1,
    udp_timeout => 2, retry => 1, searchlist => [], defnames => 0,
    dnsrch => 0));
open my $fh, '<', $file or die "$file: $!"; local $/; my $m = <$fh>;
my $v = Mail::DKIM::ARC::Verifier->new(); $v->PRINT($m); $v->CLOSE;
print $v->result, " (", ($v->result_detail // ''), ")\n";
"""


def keygen(d: Path, domain: str):
    """(key file, TXT value) of a new RSA key made by `amp dkim keygen`."""
    out = d / f"{domain}.pem"
    p = subprocess.run([AMP_BIN, "dkim", "keygen", "--domain", domain,
                        "--selector", SEL, "--alg", "rsa", "--out", str(out)],
                       capture_output=True, check=True)
    txt = "".join(re.findall(r'"([^"]*)"', p.stdout.decode()))
    assert txt.startswith("v=DKIM1; k=rsa; p="), p.stdout
    return out, txt


def zone_txt(s: str) -> str:
    return " ".join('"' + s[i:i + 250] + '"' for i in range(0, len(s), 250))


@pytest.fixture
def chain(base, dns_server, tmp_path):  # noqa: F811
    b, nodes = base
    kd = Path(tempfile.mkdtemp(prefix="amp-fwd-keys-", dir=b))
    keys = {dom: keygen(kd, dom) for dom in (ALPHA, BETA, SENDER_DOM)}
    records = {f"{SEL}._domainkey.{dom}": txt for dom, (_, txt) in keys.items()}
    zone = "".join(f"{name}. 60 IN TXT {zone_txt(txt)}\n"
                   for name, txt in records.items())
    for dom in (ALPHA, BETA, SENDER_DOM):
        zone += f'{dom}. 60 IN TXT "v=spf1 ip4:127.0.0.1 -all"\n'
    dns = dns_server(zone)
    legacy, senderbox = Receiver(), Receiver()
    ports = {ALPHA: free_port(), BETA: free_port()}
    conf = {}
    for dom, alias, routes in (
            (ALPHA, f"x@{ALPHA} y@{BETA}\n",
             {BETA: ports[BETA], SENDER_DOM: senderbox.port}),
            (BETA, f"y@{BETA} z@{LEGACY_DOM}\n",
             {ALPHA: ports[ALPHA], LEGACY_DOM: legacy.port})):
        (kd / f"{dom}.virtual").write_text(alias)
        (kd / f"{dom}.transport").write_text("".join(
            f"{d} smtp:[127.0.0.1]:{p}\n" for d, p in routes.items()))
        conf[dom] = dict(
            smtp_listen="127.0.0.1", smtp_port=ports[dom],
            dns_forwarder=dns.forwarder,
            dkim_keys=f"{dom}:{SEL}:{keys[dom][0]}",
            virtual_alias_maps=str(kd / f"{dom}.virtual"),
            transport_maps=str(kd / f"{dom}.transport"),
            smtp_out_retry_min="1s", smtp_out_retry_max="1s",
            smtp_out_command_timeout="5s", smtp_out_connect_timeout="3s")
    kd.chmod(0o755)
    world = {}
    for dom in (ALPHA, BETA):
        n = Node(b, dom, **conf[dom])
        nodes.append(n)
        n.start()
        n.smtp_port = ports[dom]
        world[dom] = n
    world.update(dns=dns, records=records, legacy=legacy, senderbox=senderbox,
                 sender_key=keys[SENDER_DOM][0])
    yield world
    legacy.stop()
    senderbox.stop()


def signed_message(key: Path, subject: str) -> bytes:
    m = (f"From: Alice <a@{SENDER_DOM}>\r\nTo: <x@{ALPHA}>\r\n"
         f"Subject: {subject}\r\nDate: Mon, 23 Nov 2026 10:00:00 +0000\r\n"
         f"Message-ID: <{subject}@{SENDER_DOM}>\r\n\r\n"
         f"Hello through two forwarders ({subject}).\r\n").encode()
    return dkim.sign(m, SEL.encode(), SENDER_DOM.encode(), key.read_bytes(),
                     include_headers=[b"from", b"to", b"subject", b"date",
                                      b"message-id"]) + m


def send(port, mail_from, rcpt, data):
    with smtplib.SMTP("127.0.0.1", port, timeout=60) as s:
        s.ehlo(f"mx.{SENDER_DOM}")
        assert s.mail(mail_from)[0] == 250
        code, text = s.rcpt(rcpt)
        assert code == 250, (code, text)
        code, text = s.data(data)
        assert code == 250, (code, text)


def dnsfunc_of(records):
    def dnsfunc(name, timeout=5):
        return records.get(name.decode().rstrip("."), "").encode()
    return dnsfunc


def header_fields(data: bytes, name: bytes):
    head = data.split(b"\r\n\r\n", 1)[0]
    fields = re.split(rb"\r\n(?![ \t])", head)
    return [f for f in fields if f.lower().startswith(name.lower() + b":")]


def test_chain_seals_rewrites_and_bounces_back(chain, tmp_path):
    alpha, beta = chain[ALPHA], chain[BETA]
    legacy, senderbox = chain["legacy"], chain["senderbox"]
    send(alpha.smtp_port, f"a@{SENDER_DOM}", f"x@{ALPHA}",
         signed_message(chain["sender_key"], "first"))
    (mail_from, rcpts, data), = legacy.wait(1, timeout=60)
    assert rcpts == [f"z@{LEGACY_DOM}"]
    # beta's SRS1 address, alpha's SRS0 inside it
    m = re.fullmatch(rf"SRS1=[A-Z2-7]+={re.escape(ALPHA)}==[A-Z2-7]+=[A-Z2-7]{{2}}="
                     rf"{re.escape(SENDER_DOM)}=a@{re.escape(BETA)}", mail_from,
                     flags=re.I)
    assert m, mail_from
    seals = header_fields(data, b"ARC-Seal")
    assert len(seals) == 2, data[:3000]
    by_i = {re.search(rb"\bi=(\d+)", s).group(1): s for s in seals}
    assert re.search(rb"\bd=" + ALPHA.encode() + rb";", by_i[b"1"])
    assert re.search(rb"\bcv=none\b", by_i[b"1"])
    assert re.search(rb"\bd=" + BETA.encode() + rb";", by_i[b"2"])
    assert re.search(rb"\bcv=pass\b", by_i[b"2"])
    aar = [f for f in header_fields(data, b"ARC-Authentication-Results")
           if re.search(rb"i=2;", f)]
    assert aar and b"arc=pass" in aar[0] and BETA.encode() in aar[0], aar
    dnsfunc = dnsfunc_of(chain["records"])
    cv, results, reason = dkim.arc_verify(data, dnsfunc=dnsfunc)
    assert cv == b"pass", (cv, results, reason)
    assert dkim.verify(data, dnsfunc=dnsfunc), "the sender's DKIM broke"
    f = tmp_path / "received.eml"
    f.write_bytes(data)
    p = subprocess.run(["perl", "-e", PERL_ARC, str(f), str(chain["dns"].port)],
                       capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stderr
    assert p.stdout.startswith("pass"), p.stdout
    alpha.wait_log(r"smtp: forwarding.* srs=rewritten .*arc=sealed cv=none")
    beta.wait_log(r"smtp: forwarding.* srs=rewritten .*arc=sealed cv=pass")

    # A bounce: the legacy receiver refuses the next message; beta's DSN
    # goes to alpha's SRS0 address, alpha turns it back to the sender.
    legacy.rcpt_script = ["550 5.1.1 <z@legacy.example.org>: no such user"]
    send(alpha.smtp_port, f"a@{SENDER_DOM}", f"x@{ALPHA}",
         signed_message(chain["sender_key"], "second"))
    (bfrom, brcpts, bdata), = senderbox.wait(1, timeout=60)
    assert bfrom in ("", "<>") and brcpts == [f"a@{SENDER_DOM}"], (bfrom, brcpts)
    assert b"multipart/report" in bdata and b"report-type=delivery-status" in bdata
    assert f"z@{LEGACY_DOM}".encode() in bdata and b"Status: 5.1.1" in bdata
    beta.wait_log(r'msg="outbound: attempt" .*bounced=1 dsn=mail')
    beta.wait_log(r'msg="outbound: attempt" .*domain=' + re.escape(ALPHA) +
                  r' .*delivered=1')
    alpha.wait_log(r"smtp: forwarding.* srs=null-sender ")
    assert len(legacy.messages) == 1


def test_forged_srs_is_refused(chain):
    alpha = chain[ALPHA]
    with smtplib.SMTP("127.0.0.1", alpha.smtp_port, timeout=30) as s:
        s.ehlo(f"mx.{SENDER_DOM}")
        assert s.mail("")[0] == 250
        for forged in (f"SRS0=AAAAAA=AA={SENDER_DOM}=a@{ALPHA}",
                       f"SRS1=AAAAAA={BETA}==BBBBBB=AA={SENDER_DOM}=a@{ALPHA}",
                       f"srs0+zzzz=AA={SENDER_DOM}=a@{ALPHA}"):
            code, text = s.rcpt(forged)
            assert code == 550 and text.startswith(b"5.1.1 "), (forged, code, text)
            assert b"SRS" in text, text
    alpha.wait_log(r'smtp: recipient refused.*code=550 reason="SRS: ')


@pytest.fixture
def single(base, dns_server):  # noqa: F811
    """One node (alpha) with an alias to an address elsewhere, a backup-MX
    domain (relay_domains), both routed to one receiver, and a key of
    slow.example.org whose record never comes (TIMEOUT)."""
    b, nodes = base
    kd = Path(tempfile.mkdtemp(prefix="amp-fwd-keys-", dir=b))
    key, txt = keygen(kd, ALPHA)
    skey, _ = keygen(kd, "slow.example.org")
    dns = dns_server(f"{SEL}._domainkey.{ALPHA}. 60 IN TXT {zone_txt(txt)}\n"
                     f"{SEL}._domainkey.slow.example.org. TIMEOUT\n")
    rcv = Receiver()
    (kd / "virtual").write_text(f"x@{ALPHA} y@elsewhere.example.com\n")
    (kd / "transport").write_text(
        f"elsewhere.example.com smtp:[127.0.0.1]:{rcv.port}\n"
        f"backup.example.com smtp:[127.0.0.1]:{rcv.port}\n")
    kd.chmod(0o755)
    port = free_port()
    n = Node(b, ALPHA, smtp_listen="127.0.0.1", smtp_port=port,
             dns_forwarder=dns.forwarder, dkim_keys=f"{ALPHA}:{SEL}:{key}",
             virtual_alias_maps=str(kd / "virtual"),
             transport_maps=str(kd / "transport"),
             relay_domains="backup.example.com", auth_timeout="2s",
             dns_timeout="1s", smtp_out_retry_min="1s",
             smtp_out_retry_max="1s")
    nodes.append(n)
    n.start()
    n.smtp_port = port
    yield n, rcv, skey
    rcv.stop()


def plain(subject: str) -> bytes:
    return (f"From: <a@{SENDER_DOM}>\r\nTo: <x@{ALPHA}>\r\n"
            f"Subject: {subject}\r\n\r\nbody\r\n").encode()


def test_backup_mx_and_switched_off_are_not_rewritten(single):
    n, rcv, _ = single
    # relay_domains is backup MX, not forwarding: as it came
    send(n.smtp_port, f"a@{SENDER_DOM}", "u@backup.example.com", plain("mx"))
    # the alias elsewhere: SRS0 and a seal
    send(n.smtp_port, f"a@{SENDER_DOM}", f"x@{ALPHA}", plain("fwd"))
    got = {re.search(rb"Subject: (\w+)", d).group(1): (f, d)
           for f, _, d in rcv.wait(2, timeout=60)}
    f, d = got[b"mx"]
    assert f == f"a@{SENDER_DOM}" and b"ARC-Seal" not in d, f
    f, d = got[b"fwd"]
    assert re.fullmatch(rf"SRS0=\w+=\w\w={SENDER_DOM}=a@{ALPHA}", f), f
    assert d.startswith(b"ARC-Seal: i=1; a=rsa-sha256; cv=none; d=" +
                        ALPHA.encode())
    # srs = no, arc_seal = no: forwarded as it came
    n.stop()
    n.conf.update(srs="no", arc_seal="no")
    n.write_conf()
    n.start()
    send(n.smtp_port, f"a@{SENDER_DOM}", f"x@{ALPHA}", plain("off"))
    f, _, d = rcv.wait(3, timeout=60)[2]
    assert f == f"a@{SENDER_DOM}" and b"ARC-Seal" not in d, f
    n.wait_log(r"smtp: forwarding.* srs=off .*arc=off")


def test_a_chain_we_could_not_validate_is_not_sealed(single):
    n, rcv, skey = single
    m = (b"Authentication-Results: lists.slow.example.org; none\r\n" +
         plain("slowchain"))
    m = b"".join(dkim.arc_sign(m, SEL.encode(), b"slow.example.org",
                               skey.read_bytes(), b"lists.slow.example.org")) + m
    send(n.smtp_port, f"a@{SENDER_DOM}", f"x@{ALPHA}", m)
    (f, _, d), = rcv.wait(1, timeout=60)
    assert f.startswith("SRS0="), f
    assert len(header_fields(d, b"ARC-Seal")) == 1  # dkimpy's i=1 only
    n.wait_log(r"smtp: forwarding.* srs=rewritten .*arc=temperror "
               r"cv=temperror")
