#!/usr/bin/env python3
"""The API v1 rules of porter.h that the Dart package relies on (issues 14
and 18), from Python's ctypes with threads standing in for isolates.

  * Explicit call ids with many threads: every thread takes its own ids
    with porter_call_id_new() (all distinct, none 0), some calls are
    cancelled by another thread (porter_cancel and porter_cancel_nowait)
    and exactly those return PORTER_E_CANCELLED; the others succeed.
  * porter_db_free closes a db session without waiting (its backend goes,
    its transaction is rolled back); 0 and a second free are ignored.
  * *_free never waits, even with porterd stopped (SIGSTOP): freeing a db
    session, an unfinished HTTP stream, db cursor, file reader and file
    writer and queueing a cancel return at once on any thread, while the
    *_close of the same kind of handle waits for its timeout; once porterd
    runs again, libporter's background thread has told it and the streams
    and the session are gone.
  * A cancel reaches a file read made of many requests: the read's id is
    on every chunk request, so a cancel sent after the first chunk stops
    the read (PORTER_E_CANCELLED) and porterd drops the reader's stream.
  * Whole-stream deadlines: a cursor opened with stream_timeout_ms fails
    its reads with PORTER_E_TIMEOUT once that much time has passed since
    the open, whatever each read's own timeout.
  * Option structs: porter_http_options without struct_size is refused.
  * Out structs (stats, file info, HTTP timings) carry their size: one
    below version 1's is refused with nothing written, and the library
    never writes past struct_size (guard bytes after it stay untouched).
  * NULL arguments (api_null.py): every pointer parameter of every
    function declared in porter.h, NULL in turn, gives what porter.h says
    (PORTER_E_INVAL and cleared out-parameters, or acceptance where
    documented), never a crash or a hang.
  * The shape of every declaration (api_null.shape_breaches, with a
    self-check on broken copies of porter.h): inputs, call_id, timeout_ms,
    then outs; no call without a timeout; bytes as void pointers; every
    stream has open, read or write, close with a timeout, and free; sized
    structs start with struct_size, and every struct the library writes
    into has an *_INIT macro.

The file checks run against porterd with file-pass-fd = false: they are
of the byte path (test_isolates.py covers files by descriptor).

Usage: test_api_v1.py --lib PATH/libporter.so --porterd PATH/porterd
                      --pg-state DIR (tests/support/pg.sh's state directory)
"""
import ctypes
import os
import queue
import signal
import sys
import threading
import time

here = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, here)
import test_contract as tc  # noqa: E402  (shares its bindings and helpers)
from api_null import test_api_shape, test_null_arguments  # noqa: E402
from ffi_support import (UidUsage, read_chunk, read_result, run_suite,  # noqa: E402
                         suite_args)
from test_contract import check  # noqa: E402

HARD_LIMIT_S = 150
CHUNK = 65536  # porterd's --file-chunk-size here
PORTER_E_DB_SESSION = -22


def test_explicit_ids_many_threads(threads=16, rounds=6):
    """Ids are per call: taken on any thread, never reserved, and a cancel
    stops exactly the call carrying its id."""
    lib = tc.c.lib
    ids = [lib.porter_call_id_new() for _ in range(1000)]
    check(0 not in ids and len(set(ids)) == len(ids), 'ids are distinct and never 0')
    victims = queue.Queue()
    results = []
    lock = threading.Lock()

    def body(i):
        for k in range(rounds):
            cid = lib.porter_call_id_new()
            cancel_me = (i + k) % 2 == 0
            if cancel_me:
                victims.put((cid, k % 3 == 0))  # some by porter_cancel_nowait
            t0 = time.monotonic()
            # A call to be cancelled would take 10 s; the others 20 ms.
            rc = lib.porter_ping_delay(None, 0, 10000 if cancel_me else 20, cid, 20000)
            with lock:
                results.append((cancel_me, rc, time.monotonic() - t0, cid))
        lib.porter_thread_disconnect()

    stop = threading.Event()

    def canceller():
        while not stop.is_set():
            try:
                cid, nowait = victims.get(timeout=0.05)
            except queue.Empty:
                continue
            if nowait:
                rc = lib.porter_cancel_nowait(cid)
                check(rc == 0, 'cancel queued (%d)' % rc)
            else:
                rc = lib.porter_cancel(cid, 5000)
                check(rc in (0, tc.PORTER_E_NOT_FOUND), 'cancel answered (%d)' % rc)
        lib.porter_thread_disconnect()

    ct = threading.Thread(target=canceller)
    ct.start()
    try:
        tc.run_threads(threads, body)
    finally:
        stop.set()
        ct.join()
    check(len(results) == threads * rounds, 'every call returned')
    for cancel_me, rc, dt, cid in results:
        if cancel_me:
            check(rc == tc.PORTER_E_CANCELLED and dt < 8,
                  'call %d cancelled (%d after %.2f s)' % (cid, rc, dt))
        else:
            check(rc == 0, 'call %d not cancelled (%d)' % (cid, rc))
    print('  %d calls on %d threads, %d cancelled by id'
          % (len(results), threads, sum(1 for r in results if r[0])))


def fds_http():
    fd, db, http = tc.c.resources()
    return fd - db, http


def make_file(name, size):
    path = os.path.join(tc.d.dir, 'files', name)
    with open(path, 'wb') as f:
        f.write(os.urandom(size))
    return name.encode()


def fd_targets():
    """What porterd's descriptors point to."""
    d = '/proc/%d/fd' % tc.d.pid
    out = []
    for f in os.listdir(d):
        try:
            out.append(os.readlink(os.path.join(d, f)))
        except OSError:
            pass
    return sorted(out)


def file_fds():
    """porterd's descriptors in the file root (files, temp files, the
    directory an atomic write holds), not sockets or its own files."""
    root = os.path.join(tc.d.dir, 'files')
    return [t for t in fd_targets() if t == root or t.startswith(root + '/')]


def session_with_backend():
    """A new db session and the pid of its PostgreSQL backend."""
    s = tc.db_open()
    rows, _, _ = tc.db_query(s, 'SELECT pg_backend_pid()')
    return s, int(rows[0][0])


def backend_gone(pid, seconds=10):
    """Whether PostgreSQL backend `pid` is gone within `seconds`."""
    until = time.monotonic() + seconds
    while True:
        rows, _, _ = tc.db_query(0, 'SELECT count(*) FROM pg_stat_activity WHERE pid = %d' % pid)
        if rows[0][0] == b'0':
            return True
        if time.monotonic() > until:
            return False
        time.sleep(0.05)


def test_db_free_closes_the_session():
    """porter_db_free closes a session in porterd without waiting: its
    open transaction is rolled back, its PostgreSQL backend goes and the
    id is no more. A second free, a free of 0 and porter_db_close(0) are
    ignored."""
    lib = tc.c.lib
    s, pid = session_with_backend()
    tc.db_query(s, 'BEGIN')
    tc.db_query(s, 'CREATE TABLE api_free_probe (x int)')
    t0 = time.monotonic()
    lib.porter_db_free(s)
    dt = time.monotonic() - t0
    check(dt < 0.5, 'porter_db_free returned at once (%.3f s)' % dt)
    check(backend_gone(pid), 'the session\'s backend %d is gone' % pid)
    rows, _, _ = tc.db_query(0, "SELECT to_regclass('api_free_probe') IS NULL")
    check(rows[0][0] == b't', 'its open transaction was rolled back')
    tc.db_query(s, 'SELECT 1', expect=PORTER_E_DB_SESSION)
    lib.porter_db_free(s)
    lib.porter_db_free(0)
    check(lib.porter_db_close(0, 0, 5000) == 0, 'porter_db_close(0) is ignored')
    rc = lib.porter_db_close(s, 0, 5000)
    check(rc == PORTER_E_DB_SESSION, 'the freed session is not there to close (%d)' % rc)


def test_free_never_waits_with_daemon_stopped():
    """*_free and porter_cancel_nowait return at once on any thread while
    porterd is stopped; the daemon is told afterwards."""
    lib = tc.c.lib
    name = make_file('free-me.bin', 8 * CHUNK)
    session, backend = session_with_backend()
    fds0, http0 = fds_http()
    files0 = file_fds()
    handles = [(lib.porter_db_free, session)]
    st = tc.stream_open('/bin/50000000', chunk_size=16384)
    handles.append((lib.porter_http_stream_free, st))
    cur = ctypes.c_void_p()
    rc = lib.porter_db_cursor_open(0, tc.conninfo.encode(),
                                   b'SELECT g FROM generate_series(1, 1000000) g', None, 0,
                                   100, 0, 0, 5000, ctypes.byref(cur))
    check(rc == 0, 'cursor open (%d)' % rc)
    handles.append((lib.porter_db_cursor_free, cur))
    rd = ctypes.c_void_p()
    rc = lib.porter_file_reader_open(b'files', name, 0, 0, 0, 0, 5000, ctypes.byref(rd))
    check(rc == 0, 'reader open (%d)' % rc)
    handles.append((lib.porter_file_reader_free, rd))
    wr = ctypes.c_void_p()
    rc = lib.porter_file_writer_open(b'files', b'abandoned.bin', tc.PORTER_FILE_ATOMIC, 0o600,
                                     0, 5000, ctypes.byref(wr))
    check(rc == 0, 'writer open (%d)' % rc)
    handles.append((lib.porter_file_writer_free, wr))
    # A second stream of each waiting kind, for the close that does wait.
    st2 = tc.stream_open('/bin/50000000', chunk_size=16384)
    fds1, http1 = fds_http()
    check(http1 == http0 + 2 and len(file_fds()) >= len(files0) + 2,
          'the streams are open in porterd (%s)' % file_fds())

    os.kill(tc.d.pid, signal.SIGSTOP)
    try:
        # Frees from other threads (finalizers run on arbitrary threads).
        took = []

        def free_on_thread(fn, h):
            t0 = time.monotonic()
            fn(h)
            took.append(time.monotonic() - t0)

        ts = [threading.Thread(target=free_on_thread, args=fh) for fh in handles]
        ts.append(threading.Thread(target=free_on_thread,
                                   args=(lib.porter_cancel_nowait, lib.porter_call_id_new())))
        for t in ts:
            t.start()
        for t in ts:
            t.join()
        check(len(took) == len(handles) + 1, 'every free returned')
        # Microseconds each; a daemon round trip would be at least the
        # background job's 1 s bound with porterd stopped.
        check(max(took) < 0.5, 'frees took %s s' % ['%.3f' % t for t in took])
        # The close that waits does wait (for its timeout), and still frees.
        t0 = time.monotonic()
        rc = lib.porter_http_stream_close(st2, 300)
        dt = time.monotonic() - t0
        check(rc == tc.PORTER_E_TIMEOUT and dt >= 0.25,
              'close waited for the stopped daemon (%d after %.2f s)' % (rc, dt))
    finally:
        os.kill(tc.d.pid, signal.SIGCONT)
    # The background thread told porterd: the transfers and files go. (Its
    # sockets are not counted: libcurl may keep the upstream connections
    # of the aborted transfers in its cache.)
    check(tc.c.await_transfers(0, seconds=10) == 0, 'the freed HTTP streams are gone')
    until = time.monotonic() + 10
    while len(file_fds()) > len(files0) and time.monotonic() < until:
        time.sleep(0.02)
    check(len(file_fds()) <= len(files0), 'the reader and writer files are closed (%s -> %s)'
          % (files0, file_fds()))
    check(backend_gone(backend), 'the freed db session\'s backend %d is gone' % backend)


def test_cancel_reaches_multi_request_file_read(size_mb=64, rounds=5):
    """Every request of a multi-request read carries the read's id. A
    reader's reads with call_id 0 use the open's id: a cancel of it sent
    after the open returned and after reads went through stops the next
    read. porter_file_read of a file of many chunks puts its id on every
    chunk request: a cancel sent while it runs stops it."""
    lib = tc.c.lib
    name = make_file('big.bin', size_mb << 20)
    info = tc.FileInfo()
    check(lib.porter_file_stat(b'files', name, 0, 5000, ctypes.byref(info)) == 0, 'stat')
    files0 = file_fds()  # with porterd's handle on the root, if it keeps one
    # The reader API, step by step (deterministic).
    cid = lib.porter_call_id_new()
    rd = ctypes.c_void_p()
    rc = lib.porter_file_reader_open(b'files', name, 0, 0, 0, cid, 5000, ctypes.byref(rd))
    check(rc == 0, 'reader open (%d)' % rc)
    read = lib.porter_file_reader_read
    for k in range(3):
        rc, chunk = read_chunk(read, rd)
        check(rc == 1 and len(chunk) == CHUNK, 'chunk %d (%d)' % (k, rc))
    crc = [None]
    t = threading.Thread(target=lambda: (crc.__setitem__(0, lib.porter_cancel(cid, 5000)),
                                         lib.porter_thread_disconnect()))
    t.start()
    t.join()
    check(crc[0] == tc.PORTER_E_NOT_FOUND, 'nothing in flight: remembered (%s)' % crc[0])
    # (read_chunk also checks that a failed read leaves no chunk.)
    rc, _ = read_chunk(read, rd)
    check(rc == tc.PORTER_E_CANCELLED, 'the next read carries the open\'s id (%d)' % rc)
    rc, _ = read_chunk(read, rd)
    check(rc == tc.PORTER_E_CANCELLED, 'and so does every later read (%d)' % rc)
    check(lib.porter_file_reader_close(rd, 5000) == 0, 'close tells porterd')
    until = time.monotonic() + 10
    while len(file_fds()) > len(files0) and time.monotonic() < until:
        time.sleep(0.02)
    check(len(file_fds()) <= len(files0), 'the cancelled reader is gone (%s)' % file_fds())

    # porter_file_read: a cancel while it runs.
    cancelled = 0
    for k in range(rounds):
        cid = lib.porter_call_id_new()
        out = ctypes.POINTER(tc.Bytes)()
        done = queue.Queue()

        def reader():
            t0 = time.monotonic()
            rc = lib.porter_file_read(b'files', name, 0, 0, cid, 60000, ctypes.byref(out))
            done.put((rc, time.monotonic() - t0))
            lib.porter_thread_disconnect()

        t = threading.Thread(target=reader)
        t.start()
        # Until porterd has the file open, then a little more: the open
        # has been answered and chunk requests follow one another.
        until = time.monotonic() + 10
        while len(file_fds()) <= len(files0) and done.empty() and time.monotonic() < until:
            time.sleep(0.001)
        time.sleep(0.02)
        crc = lib.porter_cancel(cid, 5000)
        t.join(30)
        rc, dt = done.get(timeout=1)
        if rc == 0:
            # Only when the whole read finished before the cancel arrived.
            check(crc == tc.PORTER_E_NOT_FOUND, 'a read found in flight finished anyway')
            lib.porter_bytes_free(out)
            continue
        check(rc == tc.PORTER_E_CANCELLED, 'the read was cancelled (%d, cancel %d)' % (rc, crc))
        check(not out, '*out is NULL on failure')
        cancelled += 1
    check(cancelled > 0, 'no cancel landed during any of %d reads' % rounds)
    until = time.monotonic() + 10
    while len(file_fds()) > len(files0) and time.monotonic() < until:
        time.sleep(0.02)
    check(len(file_fds()) <= len(files0), 'porterd dropped the cancelled readers (%s)'
          % file_fds())
    print('  %d of %d whole-file reads of %d MiB (%d requests) stopped by a cancel'
          % (cancelled, rounds, size_mb, (size_mb << 20) // CHUNK))


def test_stream_deadline():
    """A deadline fixed at open bounds every read of the cursor: a reader
    that takes its time gets PORTER_E_TIMEOUT once the stream's time is up,
    although each read's own timeout is 5 s."""
    lib = tc.c.lib
    cur = ctypes.c_void_p()
    t0 = time.monotonic()
    rc = lib.porter_db_cursor_open(0, tc.conninfo.encode(),
                                   b'SELECT g FROM generate_series(1, 1000000) g',
                                   None, 0, 100, 1500, 0, 5000, ctypes.byref(cur))
    check(rc == 0, 'cursor open (%d)' % rc)
    n = 0
    try:
        while time.monotonic() - t0 < 10:
            rc, _ = read_result(lib.porter_db_cursor_read, cur)
            if rc != 1:
                break
            n += 1
            time.sleep(0.1)  # a slow consumer
        dt = time.monotonic() - t0
        check(rc == tc.PORTER_E_TIMEOUT, 'the stream deadline ended the reads (%d)' % rc)
        # libporter counts the deadline in whole milliseconds from a clock
        # read after t0: it may end a millisecond or two before 1.5 s of
        # this clock.
        check(1.45 <= dt < 8, 'at the stream deadline (%.3f s after the open)' % dt)
        check(n >= 2, 'chunks arrived before the deadline (%d)' % n)
        rc, _ = read_result(lib.porter_db_cursor_read, cur)
        check(rc == tc.PORTER_E_TIMEOUT, 'and stays past it (%d)' % rc)
    finally:
        # Unfinished: closing tells porterd, which cancels the query.
        rc = lib.porter_db_cursor_close(cur, 5000)
        check(rc == 0, 'close of the unfinished cursor (%d)' % rc)


def test_options_carry_their_size():
    lib = tc.c.lib
    out = ctypes.c_void_p()
    bad = tc.HttpOptions()
    bad.struct_size = 0
    rc = lib.porter_http_request(b'GET', tc.url('/bin/10'), None, 0, None, 0, ctypes.byref(bad),
                                 0, 5000, ctypes.byref(out))
    check(rc == tc.PORTER_E_INVAL and not out, 'options without struct_size refused (%d)' % rc)
    rc = lib.porter_http_request(b'GET', tc.url('/bin/10'), None, 0, None, 0,
                                 ctypes.byref(tc.HttpOptions()), 0, 5000, ctypes.byref(out))
    check(rc == 0, 'options from the INIT equivalent accepted (%d)' % rc)
    lib.porter_http_response_free(out)
    major, minor, patch = (int(x) for x in lib.porter_version().decode().split('.'))
    check(lib.porter_version_num() == major * 10000 + minor * 100 + patch,
          'porter_version_num agrees with porter_version')


def test_out_structs_carry_their_size():
    """The structs the caller allocates and the library fills start with
    their struct_size, and the library writes only within it: a caller's
    struct below version 1's size is refused with nothing written; a full
    one is filled and the bytes after it (a guard) are untouched; a caller
    newer than the library (a larger struct_size) keeps its extra fields
    as they were."""
    lib = tc.c.lib
    name = make_file('sized.bin', 1234)
    snap = ctypes.c_void_p()
    check(lib.porter_stats(0, 5000, ctypes.byref(snap)) == 0, 'stats')
    res = ctypes.c_void_p()
    check(lib.porter_http_get(tc.url('/bin/10'), 0, 5000, ctypes.byref(res)) == 0, 'GET')
    calls = [
        (tc.WorkerStats, lambda p: lib.porter_stats_worker(snap, 0, p),
         lambda s: s.requests > 0),
        (UidUsage, lambda p: lib.porter_stats_uid(snap, 0, p),
         lambda s: s.uid == os.getuid() and s.connections > 0),
        (tc.FileInfo, lambda p: lib.porter_file_stat(b'files', name, 0, 5000, p),
         lambda s: s.size == 1234 and s.nlink == 1),
        (tc.FileInfo, lambda p: lib.porter_file_lstat(b'files', name, 0, 5000, p),
         lambda s: s.size == 1234 and s.type == 1),
        (tc.HttpTimings, lambda p: lib.porter_http_response_timings(res, p),
         lambda s: s.total_us > 0),
    ]
    zsize = ctypes.sizeof(ctypes.c_size_t)
    try:
        for cls, call, filled in calls:
            size = ctypes.sizeof(cls)
            v1 = ctypes.sizeof(getattr(cls, 'v1', cls))
            what = cls.__name__
            cases = [(0, tc.PORTER_E_INVAL), (zsize, tc.PORTER_E_INVAL),
                     (v1 - 8, tc.PORTER_E_INVAL), (size, 0), (size + 64, 0)]
            if v1 != size:
                cases.append((v1, 0))  # a caller built against version 1
            for struct_size, want in cases:
                buf = ctypes.create_string_buffer(b'\xab' * 256, 256)
                ctypes.c_size_t.from_buffer(buf).value = struct_size
                before = buf.raw
                rc = call(ctypes.cast(buf, ctypes.POINTER(cls)))
                check(rc == want, '%s with struct_size %d gives %d, not %d'
                      % (what, struct_size, rc, want))
                if rc < 0:
                    check(buf.raw == before, '%s: a refused struct_size %d: nothing written'
                          % (what, struct_size))
                    continue
                check(buf.raw[:zsize] == before[:zsize], '%s: struct_size is the caller\'s'
                      % what)
                end = min(struct_size, size)
                check(set(buf.raw[end:]) == {0xab}, '%s with struct_size %d: written past '
                      'the struct (%s)' % (what, struct_size, buf.raw[end:end + 16].hex()))
                check(filled(cls.from_buffer_copy(buf.raw[:size])), '%s is filled' % what)
    finally:
        lib.porter_stats_free(snap)
        lib.porter_http_response_free(res)


def main():
    args = suite_args(__doc__)
    if args is None:
        return 1
    return run_suite(args, [test_api_shape, test_explicit_ids_many_threads,
                            test_db_free_closes_the_session,
                            test_free_never_waits_with_daemon_stopped,
                            test_cancel_reaches_multi_request_file_read, test_stream_deadline,
                            test_options_carry_their_size, test_out_structs_carry_their_size,
                            # Last: its probes leave streams to porterd's
                            # idle reclaim, which the others count.
                            test_null_arguments],
                     workers=2, hard_limit_s=HARD_LIMIT_S, chunk_size=CHUNK,
                     # The file checks here are of the byte path (a read of
                     # many requests, streams held in porterd); the
                     # descriptor path is test_isolates'.
                     extra=['--file-pass-fd=false'])


if __name__ == '__main__':
    sys.exit(main())
