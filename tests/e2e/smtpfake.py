"""A raw, scripted SMTP server for end-to-end tests of our SMTP client
(issue 5, TESTING.md T5/T6): plain sockets and the ssl module, no SMTP
library, so that the server is the judge of what the client sent.

    fake = FakeSMTP("127.0.0.5", port, cert=..., key=...,
                    starttls_reply=[b"220 go ahead\\r\\n250 fake-EHLO\\r\\n"])
    ...
    fake.commands   # [("plain", "EHLO mx.alpha.test"), ("plain", "STARTTLS"),
                    #  ("tls", "EHLO mx.alpha.test"), ("tls", "MAIL FROM:<...>"), ...]
    fake.messages   # [(tls, message bytes as sent, dots still stuffed)]
    fake.events     # "handshake ok", "handshake failed: ...", "bytes after
                    # STARTTLS before the handshake: ...", "closed"
    fake.stop()

One connection at a time, in a thread.  The server offers STARTTLS when it
has a certificate (and offer_starttls is true), answers STARTTLS with the
segments of `starttls_reply` (each sent with one send(), `gap` seconds
apart) and then does the TLS handshake.  Every other command gets a fixed
reply: EHLO a list of extensions (no PIPELINING: one command at a time),
MAIL/RCPT/RSET/NOOP 250, DATA 354 and 250 after the dot, QUIT 221.
Sockets time out after `timeout` seconds; the thread records what
happened instead of raising.
"""
import socket
import ssl
import threading
import time


class FakeSMTP:
    def __init__(self, host, port, cert=None, key=None, offer_starttls=True,
                 starttls_reply=(b"220 2.0.0 go ahead\r\n",), gap=0.0,
                 timeout=10.0):
        self.host, self.port = host, port
        self.ctx = None
        if cert is not None:
            self.ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            self.ctx.load_cert_chain(str(cert), str(key))
        self.offer_starttls = offer_starttls and self.ctx is not None
        self.starttls_reply = list(starttls_reply)
        self.gap = gap
        self.timeout = timeout
        self.commands = []
        self.messages = []
        self.events = []
        self.connections = 0
        self.lock = threading.Lock()
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind((host, port))
        self.sock.listen(8)
        self.sock.settimeout(0.2)
        self.running = True
        self.conn = None
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    # ---------------------------------------------------------- records

    def _cmd(self, phase, line):
        with self.lock:
            self.commands.append((phase, line))

    def _event(self, text):
        with self.lock:
            self.events.append(text)

    def wait_commands(self, pred, timeout=20.0):
        """Wait until pred(commands) is true; return the commands."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.lock:
                got = list(self.commands)
            if pred(got):
                return got
            time.sleep(0.05)
        raise AssertionError(f"fake SMTP server: condition not met; saw {self.commands} "
                             f"{self.events}")

    # ----------------------------------------------------------- server

    def _serve(self):
        while self.running:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                continue
            with self.lock:
                self.connections += 1
                self.conn = conn
            try:
                self._session(conn)
            except Exception as e:  # recorded, never raised in the thread
                self._event(f"error: {e!r}")
            finally:
                with self.lock:
                    current, self.conn = self.conn, None
                for c in (current, conn):
                    try:
                        c.close()
                    except (OSError, AttributeError):
                        pass
                self._event("closed")

    def _session(self, conn):
        conn.settimeout(self.timeout)
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        s, phase, buf = conn, "plain", bytearray()

        def send(data):
            s.sendall(data)

        def readline():
            nonlocal buf
            while b"\r\n" not in buf:
                chunk = s.recv(65536)
                if not chunk:
                    return None
                buf += chunk
            line, _, rest = bytes(buf).partition(b"\r\n")
            buf = bytearray(rest)
            return line

        send(b"220 fake.test ESMTP\r\n")
        while True:
            line = readline()
            if line is None:
                return
            text = line.decode("latin-1")
            self._cmd(phase, text)
            verb = text.split(" ", 1)[0].upper()
            if verb == "EHLO":
                ext = [b"fake.test", b"8BITMIME", b"ENHANCEDSTATUSCODES"]
                if self.offer_starttls and phase == "plain":
                    ext.append(b"STARTTLS")
                send(b"".join(b"250-" + e + b"\r\n" for e in ext[:-1]) +
                     b"250 " + ext[-1] + b"\r\n")
            elif verb == "HELO":
                send(b"250 fake.test\r\n")
            elif verb == "STARTTLS" and self.offer_starttls and phase == "plain":
                for i, seg in enumerate(self.starttls_reply):
                    if i > 0 and self.gap:
                        time.sleep(self.gap)
                    send(seg)
                if buf:
                    # T1 on the client side: nothing may follow STARTTLS
                    self._event(f"bytes after STARTTLS before the handshake: {bytes(buf)!r}")
                    buf = bytearray()
                try:
                    s = self.ctx.wrap_socket(conn, server_side=True)
                except (ssl.SSLError, OSError) as e:
                    self._event(f"handshake failed: {e}")
                    return
                with self.lock:
                    self.conn = s  # conn is detached now
                self._event("handshake ok")
                phase = "tls"
            elif verb in ("MAIL", "RCPT", "RSET", "NOOP"):
                send(b"250 2.0.0 ok\r\n")
            elif verb == "DATA":
                send(b"354 go on\r\n")
                lines = []
                while True:
                    body = readline()
                    if body is None:
                        return
                    if body == b".":
                        break
                    lines.append(body)
                with self.lock:
                    self.messages.append((phase == "tls",
                                          b"".join(x + b"\r\n" for x in lines)))
                send(b"250 2.0.0 queued as FAKE\r\n")
            elif verb == "QUIT":
                send(b"221 2.0.0 bye\r\n")
                return
            else:
                send(b"502 5.5.1 not here\r\n")

    def stop(self):
        self.running = False
        with self.lock:
            if self.conn is not None:
                try:  # wake a session blocked in recv
                    self.conn.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
        self.thread.join(timeout=self.timeout + 5)
        self.sock.close()
