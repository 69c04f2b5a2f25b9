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
