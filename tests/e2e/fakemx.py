"""A scripted, raw fake SMTP server for driver-level fault tests of our
outbound client (issue 5, TESTING.md E1, E2, E6): plain sockets, no SMTP
library, so that the server says exactly what a test wants, byte for
byte, and records exactly what our client sent.

    mx = FakeMX("127.0.0.1", port, [
        {"RCPT": ["550 5.1.1 no such user", "250 2.1.5 ok"]},   # connection 1
        {".": (Sleep(3), "250 2.0.0 late")},                   # connection 2, 3...
    ])
    ...
    mx.commands      # [(conn, "EHLO mx.alpha.test"), (conn, "MAIL FROM:<...>"), ...]
    mx.messages      # [(conn, body as sent: dot-stuffed, CRLF, without the ".")]
    mx.events        # [(time.time(), conn, "accept" | "greeting sent" | "354 sent"
                     #   | "dot" | "eof" | "drop" | "stall" | "error: ...")]
    mx.stop()        # closes everything and joins every thread

Each connection runs one script: a dict from a key to what the server
does, merged over DEFAULTS.  Keys: "greeting" (on connect), a command verb
in upper case ("EHLO", "MAIL", "RCPT", "DATA", ...), "." (the end of the
message), "body" (once, when the first body bytes arrive: a premature
reply), and "*" (any other verb).  The connection number N (from 1) uses
scripts[N-1], the last one for every later connection.

A value is one occurrence's action, a list of them used in turn for each
occurrence of the key on that connection (the last one repeats), or a
function of the command line (str, without CRLF) that returns the action.
An action is one step or a tuple of steps:
  bytes          sent as they are (one send; nothing is added);
  str            sent with CRLF added after it;
  Sleep(s)       wait s seconds (cut short by stop());
  DROP           close the connection at once;
  HANG           send nothing more; read and record command lines
                 (unanswered) until the client closes (then an "eof"
                 event) or stop();
  STALL          read nothing more at all (the TCP window fills; with
                 rcvbuf= set small it fills quickly) until stop().
After DATA's steps, if a "354" was among them, the body is read up to
CRLF "." CRLF and the "." steps run.  QUIT's default reply ends the
connection.

Limits: a command line is cut at 64 KiB; a body at 64 MiB.  Everything
binds on the given loopback address only.
"""
import socket
import threading
import time

CRLF = b"\r\n"


class _Mark:
    def __init__(self, name):
        self.name = name

    def __repr__(self):
        return self.name


DROP = _Mark("DROP")
HANG = _Mark("HANG")
STALL = _Mark("STALL")


class Sleep:
    def __init__(self, seconds):
        self.seconds = seconds

    def __repr__(self):
        return f"Sleep({self.seconds})"


def ehlo(*extensions, name="fake.example"):
    """An EHLO reply (bytes) naming the extensions."""
    lines = [name, *extensions]
    return b"".join(f"250{'-' if i < len(lines) - 1 else ' '}{x}\r\n".encode()
                    for i, x in enumerate(lines))


DEFAULTS = {
    "greeting": "220 fake.example ESMTP",
    "EHLO": ehlo("PIPELINING", "8BITMIME", "ENHANCEDSTATUSCODES"),
    "HELO": "250 fake.example",
    "MAIL": "250 2.1.0 ok",
    "RCPT": "250 2.1.5 ok",
    "DATA": "354 go ahead",
    ".": "250 2.0.0 queued as FAKE",
    "RSET": "250 2.0.0 ok",
    "NOOP": "250 2.0.0 ok",
    "QUIT": ("221 2.0.0 bye", DROP),
    "*": "502 5.5.1 not here",
}

LINE_MAX = 64 * 1024
BODY_MAX = 64 * 1024 * 1024


class _Closed(Exception):
    """The connection ended (the client closed it, DROP, or stop())."""


class _Conn:
    def __init__(self, fake, n, sock, script):
        self.fake, self.n, self.sock = fake, n, sock
        self.script = {**DEFAULTS, **script}
        self.count = {}
        self.buf = bytearray()
        self.line = ""

    # ------------------------------------------------------- plumbing

    def recv(self):
        while True:
            if self.fake.stopping.is_set():
                raise _Closed()
            try:
                chunk = self.sock.recv(65536)
            except socket.timeout:
                continue
            except OSError as e:
                self.fake._event(self.n, f"error: {e!r}")
                raise _Closed()
            if not chunk:
                self.fake._event(self.n, "eof")
                raise _Closed()
            return chunk

    def readline(self):
        while True:
            i = self.buf.find(CRLF)
            if i >= 0:
                line = bytes(self.buf[:i])
                del self.buf[:i + 2]
                return line
            if len(self.buf) > LINE_MAX:
                line = bytes(self.buf[:LINE_MAX])
                self.buf.clear()
                return line
            self.buf += self.recv()

    def send(self, data):
        try:
            self.sock.sendall(data)
        except OSError as e:
            self.fake._event(self.n, f"error: {e!r}")
            raise _Closed()

    def action(self, key):
        """The action for this occurrence of key, as a tuple of steps."""
        v = self.script.get(key, self.script["*"])
        k = self.count.get(key, 0)
        self.count[key] = k + 1
        if isinstance(v, list):
            v = v[min(k, len(v) - 1)]
        if callable(v):
            v = v(self.line)
        return v if isinstance(v, tuple) else (v,)

    def run(self, steps):
        """Run the steps; returns True when a 354 was sent."""
        sent_354 = False
        for s in steps:
            if isinstance(s, str):
                s = s.encode() + CRLF
            if isinstance(s, bytes):
                self.send(s)
                if s.startswith(b"354"):
                    sent_354 = True
                    self.fake._event(self.n, "354 sent")
            elif isinstance(s, Sleep):
                if self.fake.stopping.wait(s.seconds):
                    raise _Closed()
            elif s is DROP:
                self.fake._event(self.n, "drop")
                raise _Closed()
            elif s is HANG:
                self.fake._event(self.n, "hang")
                while True:  # every line recorded, none answered
                    self.record(self.readline())
            elif s is STALL:
                self.fake._event(self.n, "stall")
                self.fake.stopping.wait()
                raise _Closed()
            else:
                raise TypeError(f"fakemx: not a step: {s!r}")
        return sent_354

    # -------------------------------------------------------- session

    def body(self):
        """Read the message up to CRLF.CRLF; the "body" steps run once,
        when the first bytes are in."""
        premature = "body" in self.script
        data = bytearray(self.buf)
        self.buf.clear()
        start = 0
        while True:
            if data.startswith(b".\r\n"):
                end = 0
                break
            end = data.find(b"\r\n.\r\n", start)
            if end >= 0:
                end += 2
                break
            start = max(0, len(data) - 4)
            if len(data) > BODY_MAX:
                self.fake._event(self.n, "error: body too large")
                raise _Closed()
            if premature and data:
                premature = False
                self.run(self.action("body"))
            data += self.recv()
        rest = bytes(data[end + 3:])
        self.buf += rest
        with self.fake.lock:
            self.fake.messages.append((self.n, bytes(data[:end])))
        self.fake._event(self.n, "dot")

    def record(self, line):
        self.line = line.decode("latin-1")
        with self.fake.lock:
            self.fake.commands.append((self.n, self.line))
        return self.line

    def session(self):
        self.fake._event(self.n, "accept")
        self.run(self.action("greeting"))
        self.fake._event(self.n, "greeting sent")
        while True:
            text = self.record(self.readline())
            verb = text.split(" ", 1)[0].upper()
            if self.run(self.action(verb)) and verb == "DATA":
                self.body()
                self.run(self.action("."))


class FakeMX:
    def __init__(self, host, port, scripts=({},), rcvbuf=None):
        self.host, self.port = host, port
        self.scripts = list(scripts) or [{}]
        self.commands, self.messages, self.events = [], [], []
        self.connections = 0
        self.lock = threading.Lock()
        self.stopping = threading.Event()
        self.threads, self.socks = [], []
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if rcvbuf is not None:  # inherited by accepted sockets: a small window
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        self.sock.bind((host, port))
        self.sock.listen(16)
        self.sock.settimeout(0.1)
        t = threading.Thread(target=self._accept, name=f"fakemx-{host}", daemon=True)
        self.threads.append(t)
        t.start()

    def _event(self, n, what):
        with self.lock:
            self.events.append((time.time(), n, what))

    def _accept(self):
        while not self.stopping.is_set():
            try:
                s, _ = self.sock.accept()
            except (socket.timeout, OSError):
                continue
            with self.lock:
                self.connections += 1
                n = self.connections
                self.socks.append(s)
            s.settimeout(0.2)
            c = _Conn(self, n, s, self.scripts[min(n, len(self.scripts)) - 1])
            t = threading.Thread(target=self._serve, args=(c,),
                                 name=f"fakemx-{self.host}-{n}", daemon=True)
            with self.lock:
                self.threads.append(t)
            t.start()

    def _serve(self, c):
        try:
            c.session()
        except _Closed:
            pass
        except Exception as e:  # recorded, never raised in the thread
            self._event(c.n, f"error: {e!r}")
        finally:
            try:
                c.sock.close()
            except OSError:
                pass
            self._event(c.n, "closed")

    # ---------------------------------------------------------- queries

    def verbs(self, conn=None):
        """The verbs received, in order (on one connection, or all)."""
        with self.lock:
            return [t.split(" ", 1)[0].upper() for n, t in self.commands
                    if conn is None or n == conn]

    def lines(self, conn=None):
        with self.lock:
            return [t for n, t in self.commands if conn is None or n == conn]

    def event_time(self, conn, what):
        with self.lock:
            for t, n, w in self.events:
                if n == conn and w == what:
                    return t
        return None

    def wait(self, pred, timeout=30.0):
        """Wait until pred(self) is true."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if pred(self):
                return
            time.sleep(0.02)
        raise AssertionError(f"fakemx {self.host}:{self.port}: condition not met; "
                             f"commands {self.commands[-20:]} events {self.events[-20:]}")

    def stop(self):
        """Close every connection and join every thread."""
        self.stopping.set()
        with self.lock:
            socks = list(self.socks)
        for s in socks:
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        self.threads[0].join(timeout=10)  # accepts no more
        with self.lock:
            threads = list(self.threads)
        for t in threads:
            t.join(timeout=10)
        self.sock.close()
        alive = [t.name for t in self.threads if t.is_alive()]
        assert not alive, f"fakemx threads still running: {alive}"
