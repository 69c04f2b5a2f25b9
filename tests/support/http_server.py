#!/usr/bin/env python3
"""Loopback HTTP server for Porter's HTTP tests.

Listens on 127.0.0.1 (plain HTTP, or HTTPS with --tls-dir) on a port chosen by the OS and writes that port to the
file named by --port-file (written to a temp name, then renamed, so readers
never see half a number). It exits by itself after --lifetime seconds, and
as soon as its parent process goes away, so no test can leave it running.

Routes (all bodies are deterministic so tests can check every byte):
  /status/CODE          answers CODE with body "status CODE"
  /echo                 echoes the request body; X-Method carries the method,
                        X-Got-<name> echoes each request header named X-Test-*
                        (and Authorization and Cookie as X-Got-Authorization,
                        X-Got-Cookie)
  /headers              several response headers, one of them repeated
  /bin/N                N bytes of pattern(i) = i % 251, Content-Length set
                        (NULs at every multiple of 251)
  /chunked/N            the same N bytes, chunked transfer encoding
  /nolength/N           the same N bytes, no length, connection closed at end
  /redirect/N           302 to /redirect/N-1; /redirect/0 answers "done"
  /redirect-to?url=U    302 to U (any scheme)
  /see-other            303 to /echo
  /hang                 reads the request and never answers
  /stall/N              promises 2N bytes, sends N, then holds the connection
                        (counted by /hanging) until the client gives up
  /hanging              how many /hang connections are open now
  /reset[/MS]           promises 100000 bytes, sends 1000, resets the connection
                        MS milliseconds later (default 50)
  /slow/MS              answers "slow" after MS milliseconds
  /trickle/N/MS         N bytes of the pattern, Content-Length set, one byte
                        every MS milliseconds
  /short/N              promises 2N bytes, sends N, then closes cleanly
  /gzip/N               the pattern's N bytes gzip-compressed
                        (Content-Encoding: gzip) when the request accepts
                        gzip, else as they are
  /badgzip              Content-Encoding: gzip on a body that is not gzip
  /slow-redirect/MS/N   waits MS milliseconds, then 302 to
                        /slow-redirect/MS/N-1; /slow-redirect/MS/0 answers
                        "done"; every hop served is counted by /hops
  /hops                 how many /slow-redirect hops were served so far
  /peer                 the client's TCP source port, as the body: tests
                        tell connections apart (and see reuse) by it
  /store/KEY            keeps the request body under KEY (any method)
  /stored/KEY           answers what /store/KEY kept (404 when nothing)
  /digest               reads the whole request body (Content-Length or
                        chunked) and answers "LEN SHA256HEX FRAMING PAT" where
                        FRAMING is "length" or "chunked", PAT "pattern" when
                        the body is pattern(0, LEN), else "other"
  /early/CODE           answers CODE ("early") at once without reading the
                        request body, then drains and closes the connection
  /moved/CODE           answers CODE (301, 302, 303, 307, 308) with
                        Location: /echo and a short body, its reason phrase
                        as the standard one
  /bigheads/N/KB        302 to /bigheads/N-1/KB with KB KiB of X-Pad-*
                        headers; /bigheads/0/KB answers "done" with them
Every route reads a chunked request body as well as a sized one.
"""
import argparse
import gzip
import hashlib
import os
import socket
import ssl
import subprocess
import struct
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit


PERIOD = 251
# 64 KiB worth of whole periods plus one, so any slice of up to BLOCK bytes
# starting anywhere in a period can be cut from it.
BLOCK = 65536
TABLE = bytes(i % PERIOD for i in range(BLOCK + PERIOD))


def pattern(start, n):
    out = bytearray()
    while n > 0:
        k = min(n, BLOCK)
        s = start % PERIOD
        out += TABLE[s:s + k]
        start += k
        n -= k
    return bytes(out)


def send_pattern(wfile, n, chunked=False):
    off = 0
    while off < n:
        k = min(BLOCK, n - off)
        data = pattern(off, k)
        if chunked:
            # Uneven chunk sizes exercise the decoder's boundaries.
            pos = 0
            while pos < len(data):
                step = min(len(data) - pos, 1000 + (pos % 7919))
                wfile.write(b"%x\r\n" % step + data[pos:pos + step] + b"\r\n")
                pos += step
        else:
            wfile.write(data)
        off += k
    if chunked:
        wfile.write(b"0\r\n\r\n")


class _Discard:
    """Where a HEAD answer's body goes: nowhere."""

    def write(self, data):
        return len(data)

    def flush(self):
        pass


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, fmt, *args):
        pass

    def end_headers(self):
        super().end_headers()
        if self.command == "HEAD":
            # A HEAD answer ends with its head (RFC 9110 9.3.2), whatever
            # the route writes next; bytes after it would be read as the
            # start of the next answer on a kept-alive connection.
            self.wfile.flush()
            self.wfile = _Discard()

    def do_HEAD(self):
        real = self.wfile
        try:
            self.handle_any()
        finally:
            self.wfile = real

    def body_in(self):
        if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
            out = bytearray()
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    # Trailers, up to the blank line.
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return bytes(out)
                out += self.rfile.read(size)
                self.rfile.readline()
        n = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(n) if n else b""

    def simple(self, code, body, headers=()):
        self.send_response(code)
        for k, v in headers:
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def handle_any(self):
        url = urlsplit(self.path)
        parts = url.path.strip("/").split("/")
        head = parts[0]
        arg = parts[1] if len(parts) > 1 else ""
        if head == "early":
            self.send_response(int(arg))
            self.send_header("Content-Length", "5")
            self.send_header("Connection", "close")
            self.end_headers()
            self.wfile.write(b"early")
            self.wfile.flush()
            # Drain what the client still sends (closing with unread bytes
            # would reset the connection before it reads the answer).
            self.connection.settimeout(5)
            try:
                while self.connection.recv(65536):
                    pass
            except OSError:
                pass
            self.close_connection = True
            return
        chunked = "chunked" in (self.headers.get("Transfer-Encoding") or "").lower()
        body = self.body_in()
        if head == "status":
            code = int(arg)
            # These statuses never carry a body (RFC 9110).
            empty = code in (204, 304) or code < 200
            self.simple(code, b"" if empty else b"status %d" % code)
        elif head == "echo":
            hdrs = [("X-Method", self.command)]
            for k, v in self.headers.items():
                if k.lower().startswith("x-test-"):
                    hdrs.append(("X-Got-" + k[7:], v))
                elif k.lower() in ("authorization", "cookie", "user-agent",
                                   "content-type", "accept-encoding",
                                   "x-api-key", "x-auth-token",
                                   "proxy-authorization"):
                    hdrs.append(("X-Got-" + k, v))
            self.simple(200, body, hdrs)
        elif head == "headers":
            self.simple(200, b"headers", [("X-One", "1"), ("X-Multi", "a"),
                                           ("X-Multi", "b"),
                                           ("Content-Type", "text/plain")])
        elif head == "bin":
            n = int(arg)
            self.send_response(200)
            self.send_header("Content-Type", "application/octet-stream")
            self.send_header("Content-Length", str(n))
            self.end_headers()
            send_pattern(self.wfile, n)
        elif head == "chunked":
            n = int(arg)
            self.send_response(200)
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            send_pattern(self.wfile, n, chunked=True)
        elif head == "nolength":
            n = int(arg)
            self.send_response(200)
            self.send_header("Connection", "close")
            self.end_headers()
            self.close_connection = True
            send_pattern(self.wfile, n)
        elif head == "redirect":
            n = int(arg)
            if n <= 0:
                self.simple(200, b"done")
            else:
                self.simple(302, b"", [("Location", "/redirect/%d" % (n - 1))])
        elif head == "redirect-to":
            target = parse_qs(url.query).get("url", [""])[0]
            self.simple(302, b"", [("Location", target)])
        elif head == "digest":
            self.simple(200, b"%d %s %s %s" % (
                len(body), hashlib.sha256(body).hexdigest().encode(),
                b"chunked" if chunked else b"length",
                b"pattern" if body == pattern(0, len(body)) else b"other"))
        elif head == "bigheads":
            n, kb = int(arg), int(parts[2])
            pad = [("X-Pad-%d" % i, "p" * 1000) for i in range(kb)]
            if n <= 0:
                self.simple(200, b"done", pad)
            else:
                self.simple(302, b"", pad + [("Location",
                                              "/bigheads/%d/%d" % (n - 1, kb))])
        elif head == "moved":
            self.simple(int(arg), b"moved", [("Location", "/echo"),
                                             ("X-Hop", arg)])
        elif head == "see-other":
            self.simple(303, b"", [("Location", "/echo")])
        elif head == "hanging":
            with HANG_LOCK:
                n = HANGING[0]
            self.simple(200, b"%d" % n)
        elif head == "hang":
            # Hold the connection open without answering until the client
            # gives up (or the server's lifetime ends).
            with HANG_LOCK:
                HANGING[0] += 1
            try:
                self.hang()
            finally:
                with HANG_LOCK:
                    HANGING[0] -= 1
            self.close_connection = True
        elif head == "stall":
            n = int(arg)
            self.send_response(200)
            self.send_header("Content-Length", str(2 * n))
            self.end_headers()
            self.wfile.write(pattern(0, n))
            self.wfile.flush()
            with HANG_LOCK:
                HANGING[0] += 1
            try:
                self.hang()
            finally:
                with HANG_LOCK:
                    HANGING[0] -= 1
            self.close_connection = True
        elif head == "reset":
            self.send_response(200)
            self.send_header("Content-Length", "100000")
            self.end_headers()
            self.wfile.write(pattern(0, 1000))
            self.wfile.flush()
            time.sleep(int(arg or 50) / 1000)
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                                       struct.pack("ii", 1, 0))
            self.connection.close()
            self.close_connection = True
        elif head == "trickle":
            n = int(arg)
            ms = int(parts[2]) if len(parts) > 2 else 500
            self.send_response(200)
            self.send_header("Content-Length", str(n))
            self.end_headers()
            self.wfile.flush()
            try:
                for i in range(n):
                    time.sleep(ms / 1000.0)
                    self.wfile.write(pattern(i, 1))
                    self.wfile.flush()
            except OSError:
                pass
            self.close_connection = True
        elif head == "short":
            n = int(arg)
            self.send_response(200)
            self.send_header("Content-Length", str(2 * n))
            self.end_headers()
            self.wfile.write(pattern(0, n))
            self.wfile.flush()
            self.close_connection = True
        elif head == "gzip":
            data = pattern(0, int(arg))
            if "gzip" in (self.headers.get("Accept-Encoding") or ""):
                self.simple(200, gzip.compress(data), [("Content-Encoding", "gzip")])
            else:
                self.simple(200, data)
        elif head == "badgzip":
            # Says gzip and is not: the client's decoder must fail.
            self.simple(200, b"not gzip at all", [("Content-Encoding", "gzip")])
        elif head == "slow":
            time.sleep(int(arg) / 1000.0)
            self.simple(200, b"slow")
        elif head == "slow-redirect":
            ms, n = int(arg), int(parts[2])
            with HANG_LOCK:
                HOPS[0] += 1
            time.sleep(ms / 1000.0)
            if n <= 0:
                self.simple(200, b"done")
            else:
                self.simple(302, b"", [("Location",
                                        "/slow-redirect/%d/%d" % (ms, n - 1))])
        elif head == "hops":
            with HANG_LOCK:
                n = HOPS[0]
            self.simple(200, b"%d" % n)
        elif head == "peer":
            self.simple(200, b"%d" % self.client_address[1])
        elif head == "store":
            with HANG_LOCK:
                STORED[arg] = body
            self.simple(200, b"stored")
        elif head == "stored":
            with HANG_LOCK:
                kept = STORED.get(arg)
            if kept is None:
                self.simple(404, b"nothing stored")
            else:
                self.simple(200, kept)
        else:
            self.simple(404, b"no such route")

    def hang(self):
        self.connection.settimeout(0.05)
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            try:
                if not self.connection.recv(1):
                    break
            except socket.timeout:
                continue
            except OSError:
                break

    do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = handle_any


# Connections held open by /hang right now, reported by /hanging: tests
# use it to see that porterd really closed an abandoned transfer.
HANG_LOCK = threading.Lock()
HANGING = [0]
# Redirect hops served by /slow-redirect, and bodies kept by /store.
HOPS = [0]
STORED = {}


class Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128

    def handle_error(self, request, client_address):
        # Clients that reset or time out are what the fault routes are
        # for: not worth a traceback.
        pass


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--port-file", required=True)
    ap.add_argument("--lifetime", type=float, default=600)
    ap.add_argument("--tls-dir",
                    help="serve HTTPS with a fresh self-signed certificate "
                         "for 127.0.0.1, written to DIR/cert.pem")
    a = ap.parse_args()

    srv = Server(("127.0.0.1", 0), Handler)
    if a.tls_dir:
        cert = os.path.join(a.tls_dir, "cert.pem")
        key = os.path.join(a.tls_dir, "key.pem")
        subprocess.run(["openssl", "req", "-x509", "-newkey", "ec",
                        "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
                        "-keyout", key, "-out", cert, "-days", "2",
                        "-subj", "/CN=127.0.0.1",
                        "-addext", "subjectAltName=IP:127.0.0.1"],
                       check=True, stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL)
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(cert, key)
        srv.socket = ctx.wrap_socket(srv.socket, server_side=True)
    tmp = a.port_file + ".tmp"
    with open(tmp, "w") as f:
        f.write("%d\n" % srv.server_address[1])
    os.rename(tmp, a.port_file)

    parent = os.getppid()
    start = time.monotonic()

    def watchdog():
        while True:
            time.sleep(0.2)
            if os.getppid() != parent or time.monotonic() - start > a.lifetime:
                os._exit(0)

    threading.Thread(target=watchdog, daemon=True).start()
    try:
        srv.serve_forever(poll_interval=0.2)
    except KeyboardInterrupt:
        pass
    sys.exit(0)


if __name__ == "__main__":
    main()
