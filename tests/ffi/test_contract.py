#!/usr/bin/env python3
"""The C contract the Dart package relies on, exercised from another FFI
host: Python's ctypes, with threads standing in for isolates.

What a Dart program does to libporter, and what is checked here:
  * many isolates call at once, each on whatever VM thread runs it: 64
    threads ping concurrently, every echo intact;
  * an isolate migrates between threads across `await`s: one logical caller
    whose successive calls run on different threads, each call's error read
    on the thread that made it, right after it;
  * a cancel token fires in one isolate while the call it names blocks in
    another: porter_cancel from a third thread stops it promptly;
  * a hot restart calls porter_reset() while other isolates are mid-call:
    every call still succeeds and the old connections go away;
  * a long-running app makes many calls and many threads come and go:
    100,000 calls leave no growth in memory or file descriptors, in this
    process or in porterd.

Usage: test_contract.py --lib PATH/libporter.so --porterd PATH/porterd
Starts its own porterd on a private socket. Exit status 0 when all passed.
"""
import argparse
import ctypes
import os
import queue
import signal
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from porterd import Daemon, fd_count, rss_kib  # noqa: E402

PORTER_E_INVAL = -1
PORTER_E_UNREACHABLE = -3
PORTER_E_CANCELLED = -11
PORTER_E_NOT_FOUND = -14
PORTER_BATCH_ALL = 0
PORTER_BATCH_FIRST = 1
HARD_LIMIT_S = 240


class WorkerStats(ctypes.Structure):
    """porter_worker_stats, field for field."""
    _fields_ = [
        ('worker', ctypes.c_uint32),
        ('connections', ctypes.c_uint64),
        ('requests', ctypes.c_uint64),
        ('inflight', ctypes.c_uint64),
        ('errors', ctypes.c_uint64),
        ('bytes_in', ctypes.c_uint64),
        ('bytes_out', ctypes.c_uint64),
    ]


def bind(path):
    """Declares every function the tests call, with porter.h's types."""
    lib = ctypes.CDLL(path)
    sigs = {
        'porter_ping': (ctypes.c_int, [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]),
        'porter_stats': (ctypes.c_int, [ctypes.POINTER(ctypes.c_void_p), ctypes.c_int]),
        'porter_stats_workers': (ctypes.c_size_t, [ctypes.c_void_p]),
        'porter_stats_worker': (ctypes.c_int, [ctypes.c_void_p, ctypes.c_size_t,
                                               ctypes.POINTER(WorkerStats)]),
        'porter_stats_uptime_ms': (ctypes.c_uint64, [ctypes.c_void_p]),
        'porter_stats_daemon_version': (ctypes.c_char_p, [ctypes.c_void_p]),
        'porter_stats_free': (None, [ctypes.c_void_p]),
        'porter_last_error': (ctypes.c_int, []),
        'porter_last_error_message': (ctypes.c_char_p, []),
        'porter_error_name': (ctypes.c_char_p, [ctypes.c_int]),
        'porter_strerror': (ctypes.c_char_p, [ctypes.c_int]),
        'porter_version': (ctypes.c_char_p, []),
        'porter_ping_delay': (ctypes.c_int, [ctypes.c_void_p, ctypes.c_size_t,
                                             ctypes.c_uint32, ctypes.c_int]),
        'porter_next_call_id': (ctypes.c_uint64, []),
        'porter_cancel': (ctypes.c_int, [ctypes.c_uint64, ctypes.c_int]),
        'porter_batch_new': (ctypes.c_void_p, [ctypes.c_int]),
        'porter_batch_free': (None, [ctypes.c_void_p]),
        'porter_batch_add_ping': (ctypes.c_int, [ctypes.c_void_p, ctypes.c_void_p,
                                                 ctypes.c_size_t, ctypes.c_uint32,
                                                 ctypes.c_int]),
        'porter_batch_run': (ctypes.c_int, [ctypes.c_void_p, ctypes.c_int,
                                            ctypes.POINTER(ctypes.c_void_p)]),
        'porter_batch_result_count': (ctypes.c_size_t, [ctypes.c_void_p]),
        'porter_batch_result_winner': (ctypes.c_int, [ctypes.c_void_p]),
        'porter_batch_result_status': (ctypes.c_int, [ctypes.c_void_p, ctypes.c_size_t]),
        'porter_batch_result_ping': (ctypes.c_int, [ctypes.c_void_p, ctypes.c_size_t,
                                                    ctypes.POINTER(ctypes.c_void_p),
                                                    ctypes.POINTER(ctypes.c_size_t)]),
        'porter_batch_result_free': (None, [ctypes.c_void_p]),
        'porter_thread_disconnect': (None, []),
        'porter_reset': (None, []),
    }
    for name, (res, args) in sigs.items():
        f = getattr(lib, name)
        f.restype = res
        f.argtypes = args
    return lib


class Failure(Exception):
    pass


def check(cond, what):
    if not cond:
        raise Failure(what)


class Client:
    """The calls a Dart isolate makes, with errors read on the same thread
    right after the call that failed (as the Dart package does)."""

    def __init__(self, lib):
        self.lib = lib

    def ping(self, payload=b'', timeout_ms=5000):
        buf = ctypes.create_string_buffer(payload, len(payload)) if payload else None
        rc = self.lib.porter_ping(buf, len(payload), timeout_ms)
        if rc < 0:
            raise Failure('ping: %s (%d): %s' % (
                self.lib.porter_error_name(rc).decode(), rc,
                self.lib.porter_last_error_message().decode()))

    def stats(self, timeout_ms=5000):
        """Returns (workers, connections, requests), freeing the snapshot."""
        snap = ctypes.c_void_p()
        rc = self.lib.porter_stats(ctypes.byref(snap), timeout_ms)
        if rc < 0:
            raise Failure('stats: %s: %s' % (
                self.lib.porter_error_name(rc).decode(),
                self.lib.porter_last_error_message().decode()))
        try:
            n = self.lib.porter_stats_workers(snap)
            conns = reqs = 0
            w = WorkerStats()
            for i in range(n):
                check(self.lib.porter_stats_worker(snap, i, ctypes.byref(w)) == 0,
                      'stats worker %d of %d' % (i, n))
                check(w.worker == i, 'worker index %d at %d' % (w.worker, i))
                conns += w.connections
                reqs += w.requests
            check(self.lib.porter_stats_worker(snap, n, ctypes.byref(w)) == PORTER_E_INVAL,
                  'out-of-range worker refused')
            check(self.lib.porter_stats_daemon_version(snap) == self.lib.porter_version(),
                  'daemon and library versions agree')
            return n, conns, reqs
        finally:
            self.lib.porter_stats_free(snap)

    def connections(self):
        return self.stats()[1]

    def await_connections(self, want, seconds=5):
        """The daemon counts closed connections a moment later."""
        until = time.monotonic() + seconds
        n = self.connections()
        while n != want and time.monotonic() < until:
            time.sleep(0.01)
            n = self.connections()
        return n


def run_threads(n, target):
    """Runs target(i) on n threads; re-raises the first failure."""
    errors = []

    def body(i):
        try:
            target(i)
        except BaseException as e:  # reported below, on the main thread
            errors.append('thread %d: %s' % (i, e))
        finally:
            c.lib.porter_thread_disconnect()

    threads = [threading.Thread(target=body, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise Failure('%d of %d threads failed; first: %s' % (len(errors), n, errors[0]))


def test_many_threads(calls_per_thread=400):
    """64 threads (isolates) ping at once with payloads of their own."""
    before = c.stats()[2]
    t0 = time.monotonic()

    def body(i):
        for j in range(calls_per_thread):
            c.ping(b'%d:%d:' % (i, j) + bytes(j % 64))

    run_threads(64, body)
    dt = time.monotonic() - t0
    total = 64 * calls_per_thread
    after = c.stats()[2]
    check(after - before >= total, 'daemon counted %d requests for %d pings'
          % (after - before, total))
    print('  64 threads: %d pings in %.2f s (%.0f calls/s)' % (total, dt, total / dt))
    check(c.await_connections(1) == 1, 'only the main thread stays connected')


class Carrier(threading.Thread):
    """One OS thread of a VM-like pool: runs whatever job it is handed."""

    def __init__(self):
        super().__init__(daemon=True)
        self.jobs = queue.Queue()
        self.start()

    def run(self):
        while True:
            job, done = self.jobs.get()
            if job is None:
                c.lib.porter_thread_disconnect()
                return
            try:
                done.put((threading.get_ident(), job(), None))
            except BaseException as e:
                done.put((threading.get_ident(), None, e))

    def call(self, job):
        """Runs job here and waits, like an isolate awaiting one call."""
        done = queue.Queue()
        self.jobs.put((job, done))
        ident, result, err = done.get()
        if err:
            raise err
        return ident, result


def test_migrating_isolate(steps=2000):
    """One logical caller whose successive calls run on different threads.

    Each step is one complete call on the thread it starts on; its error is
    read there, right after it. Another thread's failure never shows up as
    this caller's last error. (DB sessions and streams shared across the
    threads join here when the database API lands; ping and stats carry no
    state between calls.)
    """
    carriers = [Carrier() for _ in range(8)]
    seen = set()
    try:
        for k in range(steps):
            carrier = carriers[(k * 5 + k // 8) % len(carriers)]
            if k % 10 == 3:
                # A failing call: its error belongs to that thread alone.
                def failing():
                    rc = c.lib.porter_stats(None, 1000)
                    return rc, c.lib.porter_last_error(), \
                        c.lib.porter_last_error_message().decode()
                ident, (rc, last, msg) = carrier.call(failing)
                check(rc == PORTER_E_INVAL and last == PORTER_E_INVAL and msg,
                      'step %d: error reported on its own thread (%d %d %r)'
                      % (k, rc, last, msg))
            elif k % 10 == 7:
                ident, (n, conns, _) = carrier.call(c.stats)
                check(n >= 1 and conns >= 1, 'step %d: stats' % k)
            else:
                payload = b'step %d' % k
                ident, _ = carrier.call(lambda: c.ping(payload))
                # The next call on this thread starts clean.
                _, last = carrier.call(c.lib.porter_last_error)
                check(last == 0, 'step %d: a success leaves no error (%d)' % (k, last))
            seen.add(ident)
        # The caller's own thread never failed.
        check(c.lib.porter_last_error() == 0, 'main thread has no error')
        # Each thread kept one connection for all its calls: one per
        # carrier, plus this thread's.
        conns = c.await_connections(len(carriers) + 1)
        check(conns == len(carriers) + 1,
              '%d connections for %d carriers' % (conns, len(carriers)))
    finally:
        for carrier in carriers:
            carrier.jobs.put((None, None))
        for carrier in carriers:
            carrier.join()
    check(len(seen) == len(carriers), 'calls ran on %d threads' % len(seen))
    print('  migrating caller: %d calls over %d threads' % (steps, len(seen)))
    check(c.await_connections(1) == 1, 'carrier connections closed')


def test_cancel_from_another_thread(rounds=60):
    """A call blocked on one thread is cancelled from another.

    As the Dart pool does it: the calling thread reserves its next call's id
    (porter_next_call_id), hands it over, and blocks in a call the daemon
    would hold for 10 s; a different thread calls porter_cancel(id). The
    blocked call must return PORTER_E_CANCELLED within a second, on its own
    thread. Successive rounds run on different carrier threads (an isolate
    migrating between them), and the canceller is yet another thread.
    """
    carriers = [Carrier() for _ in range(4)]
    canceller = Carrier()
    in_flight = early = 0
    slowest = 0.0
    try:
        for k in range(rounds):
            ids = queue.Queue()

            def blocked():
                ids.put(c.lib.porter_next_call_id())
                t0 = time.monotonic()
                rc = c.lib.porter_ping_delay(None, 0, 10000, 20000)
                return rc, c.lib.porter_last_error(), time.monotonic() - t0

            done = queue.Queue()
            carriers[k % len(carriers)].jobs.put((blocked, done))
            call_id = ids.get(timeout=5)
            check(call_id != 0, 'a reserved id is never 0')
            if k % 2:
                time.sleep(0.02)  # let it reach the daemon first
            _, crc = canceller.call(lambda: c.lib.porter_cancel(call_id, 2000))
            _, result, err = done.get(timeout=15)
            if err:
                raise err
            rc, last, dt = result
            check(rc == PORTER_E_CANCELLED and last == PORTER_E_CANCELLED,
                  'round %d: blocked call returned %d (last error %d)' % (k, rc, last))
            check(crc in (0, PORTER_E_NOT_FOUND), 'round %d: porter_cancel %d' % (k, crc))
            check(dt < 1.0, 'round %d: cancelled call took %.2f s' % (k, dt))
            in_flight += crc == 0
            early += crc == PORTER_E_NOT_FOUND
            slowest = max(slowest, dt)
    finally:
        for t in carriers + [canceller]:
            t.jobs.put((None, None))
        for t in carriers + [canceller]:
            t.join()
    check(in_flight > 0, 'some cancels found their call in flight')
    print('  %d cancels from another thread: %d in flight, %d before arrival; '
          'slowest cancelled call %.0f ms' % (rounds, in_flight, early, slowest * 1000))
    check(c.await_connections(1) == 1, 'carrier connections closed')


def test_batch_moves_between_threads(rounds=50):
    """A batch builder and its result are used by one thread at a time but
    may move between threads, as a Dart object does when its isolate
    migrates: built on one carrier, run on a second, read on a third and
    freed on a fourth. FIRST batches return the fast member and stop the
    slow ones."""
    carriers = [Carrier() for _ in range(4)]
    lib = c.lib
    try:
        for k in range(rounds):
            first = k % 2 == 1
            at = [carriers[(k + i) % 4] for i in range(4)]

            def build():
                b = lib.porter_batch_new(PORTER_BATCH_FIRST if first else PORTER_BATCH_ALL)
                check(b, 'batch_new')
                for i in range(3):
                    payload = b'%d/%d' % (k, i)
                    slow = first and i != 1
                    check(lib.porter_batch_add_ping(b, payload, len(payload),
                                                    5000 if slow else 0,
                                                    8000) == i, 'add member %d' % i)
                return b

            _, b = at[0].call(build)

            def run():
                out = ctypes.c_void_p()
                t0 = time.monotonic()
                rc = lib.porter_batch_run(b, 10000, ctypes.byref(out))
                return rc, out.value, time.monotonic() - t0

            _, (rc, r, dt) = at[1].call(run)
            check(rc == 0, 'round %d: batch_run %d' % (k, rc))
            check(dt < 2, 'round %d: batch took %.2f s' % (k, dt))

            def read():
                n = lib.porter_batch_result_count(r)
                data, size = ctypes.c_void_p(), ctypes.c_size_t()
                got = []
                for i in range(n):
                    st = lib.porter_batch_result_status(r, i)
                    echo = None
                    if st == 0:
                        check(lib.porter_batch_result_ping(r, i, ctypes.byref(data),
                                                           ctypes.byref(size)) == 0, 'echo')
                        echo = ctypes.string_at(data, size.value)
                    got.append((st, echo))
                return lib.porter_batch_result_winner(r), got

            _, (winner, got) = at[2].call(read)
            if first:
                check(winner == 1, 'round %d: winner %d' % (k, winner))
                check(got[1] == (0, b'%d/1' % k), 'round %d: winner echo %r' % (k, got[1]))
                check(got[0][0] == PORTER_E_CANCELLED and got[2][0] == PORTER_E_CANCELLED,
                      'round %d: losers stopped: %r' % (k, got))
            else:
                check(winner == -1, 'round %d: ALL has no winner' % k)
                check(got == [(0, b'%d/%d' % (k, i)) for i in range(3)],
                      'round %d: all echoes %r' % (k, got))
            at[3].call(lambda: (lib.porter_batch_result_free(r), lib.porter_batch_free(b)))
    finally:
        for t in carriers:
            t.jobs.put((None, None))
        for t in carriers:
            t.join()
    print('  %d batches built, run, read and freed on different threads' % rounds)
    check(c.await_connections(1) == 1, 'carrier connections closed')


def test_reset_while_calling(threads=16, resets=200):
    """porter_reset() from one thread while others call: nothing fails, and
    afterwards only fresh connections remain."""
    stop = threading.Event()
    counts = [0] * threads

    def body(i):
        while not stop.is_set():
            c.ping(b'r%d' % i)
            counts[i] += 1

    failure = []

    def guarded():
        try:
            run_threads(threads, body)
        except Failure as e:
            failure.append(e)

    runner = threading.Thread(target=guarded)
    runner.start()
    for _ in range(resets):
        c.lib.porter_reset()
        time.sleep(0.002)
    stop.set()
    runner.join()
    if failure:
        raise failure[0]
    check(all(counts), 'every thread made calls')
    print('  %d resets during %d calls on %d threads' % (resets, sum(counts), threads))
    check(c.await_connections(1) == 1, 'old connections closed after reset')


def test_no_growth(total=100_000, threads=8, rounds=10):
    """100,000 calls (pings and stats) over threads that come and go, after
    one warm-up round of the same size: neither process may grow."""
    per_thread = total // (threads * rounds)
    check(per_thread * threads * rounds == total, 'calls divide evenly')
    me, daemon = os.getpid(), d.pid

    # Payload buffers made once, so Python's own allocations stay out of
    # the figures as far as possible.
    bufs = [ctypes.create_string_buffer(b'x' * n, n) for n in range(1, 200)]
    ping = c.lib.porter_ping

    def body(i):
        for j in range(per_thread):
            if j % 16 == 0:
                c.stats()
            elif j % 200 == 0:
                check(ping(None, 0, 5000) == 0, 'empty ping')
            else:
                check(ping(bufs[j % 200 - 1], j % 200, 5000) == 0, 'ping')

    def figures():
        return rss_kib(me), fd_count(me), rss_kib(daemon), fd_count(daemon)

    run_threads(threads, body)  # warm-up: allocators and caches settle
    check(c.await_connections(1) == 1, 'warm-up: thread connections closed')
    rss0, fd0, drss0, dfd0 = figures()
    t0 = time.monotonic()
    for r in range(rounds):
        run_threads(threads, body)
        check(c.await_connections(1) == 1, 'round %d: thread connections closed' % r)
    dt = time.monotonic() - t0
    rss1, fd1, drss1, dfd1 = figures()
    print('  %d calls on %d threads x %d rounds in %.1f s (%.0f calls/s)'
          % (total, threads, rounds, dt, total / dt))
    print('  test process: rss %d -> %d KiB, fds %d -> %d' % (rss0, rss1, fd0, fd1))
    print('  porterd:      rss %d -> %d KiB, fds %d -> %d' % (drss0, drss1, dfd0, dfd1))
    check(fd1 == fd0, 'test process fds %d -> %d' % (fd0, fd1))
    check(dfd1 == dfd0, 'porterd fds %d -> %d' % (dfd0, dfd1))
    # Allocators keep some slack (a few KiB here); a leak of even 16 bytes
    # per call would show as more than 1.5 MiB over 100,000 calls.
    check(rss1 - rss0 < 1024, 'test process grew %d KiB' % (rss1 - rss0))
    check(drss1 - drss0 < 1024, 'porterd grew %d KiB' % (drss1 - drss0))


def test_unreachable_then_back():
    """A daemon that is not there fails fast, on the calling thread."""
    good = os.environ['PORTER_SOCKET']
    os.environ['PORTER_SOCKET'] = good + '.absent'
    c.lib.porter_reset()
    try:
        t0 = time.monotonic()
        rc = c.lib.porter_ping(None, 0, 2000)
        check(rc == PORTER_E_UNREACHABLE, 'absent daemon: %d' % rc)
        check(c.lib.porter_last_error() == PORTER_E_UNREACHABLE, 'last error kept')
        check(time.monotonic() - t0 < 1, 'fails fast')
    finally:
        os.environ['PORTER_SOCKET'] = good
        c.lib.porter_reset()
    c.ping(b'back')


def main():
    global c, d
    ap = argparse.ArgumentParser()
    ap.add_argument('--lib', required=True)
    ap.add_argument('--porterd', required=True)
    args = ap.parse_args()
    # Nothing here may hang a CI run, whatever breaks.
    signal.signal(signal.SIGALRM, lambda *_: os._exit(3))
    signal.alarm(HARD_LIMIT_S)

    d = Daemon(args.porterd, hard_limit_s=HARD_LIMIT_S + 30).start()
    c = Client(bind(args.lib))
    print('libporter %s, porterd pid %d on %s'
          % (c.lib.porter_version().decode(), d.pid, d.socket))
    tests = [test_many_threads, test_migrating_isolate, test_cancel_from_another_thread,
             test_batch_moves_between_threads,
             test_reset_while_calling,
             test_unreachable_then_back, test_no_growth]
    failed = 0
    passed = 0
    for t in tests:
        t0 = time.monotonic()
        try:
            t()
            passed += 1
            print('PASS %s (%.1f s)' % (t.__name__, time.monotonic() - t0))
        except Failure as e:
            failed += 1
            print('FAIL %s: %s' % (t.__name__, e))
    c.lib.porter_thread_disconnect()
    status = d.stop()
    if status != 0:
        failed += 1
        print('FAIL porterd exit status %s' % status)
    if failed:
        print(d.read_log()[-4000:])
    print('%d of %d tests passed' % (passed, len(tests)))
    return 1 if failed else 0


if __name__ == '__main__':
    sys.exit(main())
