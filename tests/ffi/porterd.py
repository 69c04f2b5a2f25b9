"""A throwaway porterd for the FFI tests.

The daemon gets a private temp directory for its socket and log, is killed
when this process dies (PR_SET_PDEATHSIG), kills itself after a hard time
limit (an alarm set before exec survives it), and is stopped at exit.
"""
import atexit
import ctypes
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time

PR_SET_PDEATHSIG = 1


class Daemon:
    def __init__(self, porterd, extra=(), hard_limit_s=600):
        self.porterd = porterd
        self.extra = list(extra)
        self.hard_limit_s = hard_limit_s
        self.dir = tempfile.mkdtemp(prefix='porter-ffi-')
        self.socket = os.path.join(self.dir, 'porter.sock')
        self.log = os.path.join(self.dir, 'porterd.log')
        self.proc = None
        atexit.register(self.cleanup)

    def _child_setup(self):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        signal.alarm(self.hard_limit_s)

    def start(self):
        logf = open(self.log, 'ab')
        self.proc = subprocess.Popen(
            [self.porterd, '--config', '', '--socket', self.socket] + self.extra,
            stdout=logf, stderr=logf, stdin=subprocess.DEVNULL,
            preexec_fn=self._child_setup, close_fds=True)
        logf.close()
        until = time.monotonic() + 10
        while time.monotonic() < until:
            if self.proc.poll() is not None:
                raise RuntimeError('porterd exited with %s:\n%s'
                                   % (self.proc.returncode, self.read_log()))
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                s.connect(self.socket)
                os.environ['PORTER_SOCKET'] = self.socket
                return self
            except OSError:
                time.sleep(0.005)
            finally:
                s.close()
        self.kill()
        raise RuntimeError('porterd did not accept within 10 s')

    @property
    def pid(self):
        return self.proc.pid

    def read_log(self):
        try:
            with open(self.log, errors='replace') as f:
                return f.read()
        except OSError:
            return ''

    def stop(self):
        """SIGTERM and wait; returns the exit status (-1 if killed)."""
        if not self.proc or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else -1
        self.proc.terminate()
        try:
            return self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.kill()
            return -1

    def kill(self):
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def cleanup(self):
        self.kill()
        shutil.rmtree(self.dir, ignore_errors=True)


def rss_kib(pid):
    """Resident set size of a process in KiB, from /proc."""
    with open('/proc/%d/status' % pid) as f:
        for line in f:
            if line.startswith('VmRSS:'):
                return int(line.split()[1])
    return -1


def fd_count(pid):
    """Open file descriptors of a process, from /proc."""
    return len(os.listdir('/proc/%d/fd' % pid))


class HttpServer:
    """The loopback HTTP test server (tests/support/http_server.py) on a
    port the OS picks. It exits by itself after `lifetime_s` and as soon as
    this process goes away (it watches its parent, and PR_SET_PDEATHSIG
    kills it too), and is stopped at exit."""

    def __init__(self, lifetime_s=600):
        here = os.path.dirname(os.path.abspath(__file__))
        self.script = os.path.join(here, '..', 'support', 'http_server.py')
        self.lifetime_s = lifetime_s
        self.dir = tempfile.mkdtemp(prefix='porter-ffi-http-')
        self.proc = None
        self.port = None
        atexit.register(self.cleanup)

    def _child_setup(self):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)

    def start(self):
        import sys
        port_file = os.path.join(self.dir, 'port')
        self.proc = subprocess.Popen(
            [sys.executable, self.script, '--port-file', port_file,
             '--lifetime', str(self.lifetime_s)],
            stdin=subprocess.DEVNULL, preexec_fn=self._child_setup, close_fds=True)
        # Python's start-up alone took over 10 s at load 20 on a 2-core
        # machine; a slow start is not what any test here is about.
        until = time.monotonic() + 60
        while time.monotonic() < until:
            if self.proc.poll() is not None:
                raise RuntimeError('http_server.py exited with %s' % self.proc.returncode)
            try:
                with open(port_file) as f:
                    self.port = int(f.read())
                return self
            except (OSError, ValueError):
                time.sleep(0.01)
        self.cleanup()
        raise RuntimeError('http_server.py did not start within 60 s')

    @property
    def base(self):
        return 'http://127.0.0.1:%d' % self.port

    def cleanup(self):
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        shutil.rmtree(self.dir, ignore_errors=True)


def socket_inodes(pid):
    """The inode numbers (as text) of a process's socket descriptors, one per
    descriptor."""
    out = []
    for fd in os.listdir('/proc/%d/fd' % pid):
        try:
            link = os.readlink('/proc/%d/fd/%s' % (pid, fd))
        except OSError:
            continue
        if link.startswith('socket:['):
            out.append(link[8:-1])
    return out


def unix_fds_to_path(pid, path):
    """How many of a process's descriptors are Unix stream sockets connected
    to the server listening at `path` (its connections to a PostgreSQL on a
    Unix socket), counted from the process's side: the peers of its
    sockets, as `ss` reports them, whose own address is `path`. Counting
    the server's backends instead would count those still exiting after
    the process closed their sockets."""
    out = subprocess.run(['ss', '-xnH'], capture_output=True, text=True,
                         check=True).stdout
    server_ends, peer_of = set(), {}
    for line in out.splitlines():
        cols = line.split()
        if len(cols) < 8:
            continue
        local, local_ino, peer_ino = cols[4], cols[5], cols[7]
        if local == path:
            server_ends.add(local_ino)
        peer_of[local_ino] = peer_ino
    return sum(1 for ino in socket_inodes(pid) if peer_of.get(ino) in server_ends)


def tcp_fds_to_port(pid, port):
    """How many of a process's descriptors are TCP sockets whose peer is
    127.0.0.1:`port` (its kept-alive connections to a test server)."""
    inodes = set()
    for table in ('/proc/%d/net/tcp' % pid, '/proc/%d/net/tcp6' % pid):
        try:
            with open(table) as f:
                next(f)
                for line in f:
                    cols = line.split()
                    rem_port = int(cols[2].split(':')[1], 16)
                    if rem_port == port:
                        inodes.add(cols[9])
        except OSError:
            pass
    return sum(1 for ino in socket_inodes(pid) if ino in inodes)
