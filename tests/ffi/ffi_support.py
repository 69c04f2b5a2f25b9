"""What the suites on top of test_contract.py share: one way to read a
chunk of any libporter stream (cursor, file reader, HTTP stream, and any
later stream with the same `read(handle, call_id, timeout_ms, &data,
&len)` shape), the cursor and reader helpers built on it, and the suite
runner (daemon, HTTP server, one line per test, the daemon's log on a
failure).

The Dart package reads every stream through one helper of the same shape
(dart/lib/src/native.dart, readNativeChunk); these are its stand-ins.
"""
import argparse
import ctypes
import os
import signal
import time

import test_contract as tc
from porterd import Daemon, HttpServer
from test_contract import Failure, failure_of


# Error codes and flags beyond test_contract's (porter.h's values).
PORTER_E_FILE_EXISTS = -43
PORTER_FILE_PARENTS = 0x100
PORTER_FILE_NO_REPLACE = 0x200
PORTER_FILE_TYPE_DIRECTORY = 2
PORTER_FILE_TYPE_SYMLINK = 3

PORTER_FILE_EVENT_CREATED = 1
PORTER_FILE_EVENT_MODIFIED = 2
PORTER_FILE_EVENT_DELETED = 3
PORTER_FILE_EVENT_MOVED = 4
PORTER_FILE_EVENT_OVERFLOW = 5


class UidUsageV1(tc.Sized):
    """porter_uid_usage as version 1 had it (up to max_file_streams)."""
    _fields_ = [('struct_size', ctypes.c_size_t), ('uid', ctypes.c_uint32)] + [
        (n, ctypes.c_uint64) for n in (
            'connections', 'inflight', 'buffered_bytes', 'sessions', 'streams',
            'max_connections', 'max_inflight', 'max_buffered', 'file_streams',
            'max_file_streams')]


class UidUsage(UidUsageV1):
    """porter_uid_usage: version 1 and the fields added at its end."""
    _fields_ = [(n, ctypes.c_uint64) for n in ('max_sessions', 'http_streams',
                                                'max_http_streams')]
    v1 = UidUsageV1


def bind_more(lib):
    """Declares the functions these suites call that test_contract.bind
    does not (with porter.h's types: a uint64_t call id passed without
    argtypes would be cut to an int)."""
    cp, i, u, u64 = ctypes.c_char_p, ctypes.c_int, ctypes.c_uint, ctypes.c_uint64
    vp, sz = ctypes.c_void_p, ctypes.c_size_t
    sigs = {
        'porter_file_lstat': (i, [cp, cp, u64, i, ctypes.POINTER(tc.FileInfo)]),
        'porter_file_mkdir': (i, [cp, cp, u, u, u64, i]),
        'porter_file_rename': (i, [cp, cp, cp, u, u64, i]),
        'porter_file_copy': (i, [cp, cp, cp, u, u64, i, ctypes.POINTER(u64)]),
        'porter_stats_uids': (sz, [vp]),
        'porter_stats_uid': (i, [vp, sz, ctypes.POINTER(UidUsage)]),
        'porter_file_watch_open': (i, [cp, cp, u64, i, ctypes.POINTER(vp)]),
        'porter_file_watch_is_dir': (i, [vp]),
        'porter_file_watch_read': (i, [vp, u64, i, ctypes.POINTER(vp)]),
        'porter_file_events_count': (sz, [vp]),
        'porter_file_events_get': (i, [vp, sz, ctypes.POINTER(i), ctypes.POINTER(cp),
                                       ctypes.POINTER(cp)]),
        'porter_file_events_ended': (i, [vp]),
        'porter_file_events_free': (None, [vp]),
        'porter_file_watch_close': (i, [vp, i]),
        'porter_file_watch_free': (None, [vp]),
        'porter_http_upload_open': (i, [cp, cp, ctypes.POINTER(cp), sz, ctypes.c_int64,
                                        ctypes.POINTER(tc.HttpOptions), u64, i,
                                        ctypes.POINTER(vp)]),
        'porter_http_upload_write': (i, [vp, vp, sz, u64, i]),
        'porter_http_upload_finish': (i, [vp, u64, i, ctypes.POINTER(vp)]),
        'porter_http_upload_close': (i, [vp, i]),
        'porter_http_upload_free': (None, [vp]),
    }
    for name, (res, args) in sigs.items():
        f = getattr(lib, name)
        f.restype, f.argtypes = res, args
    return lib


def read_chunk(read, handle, call_id=0, timeout_ms=5000):
    """One read of a byte stream: (rc, bytes). rc is 1 with a chunk, 0 at
    the end (bytes None), negative on failure (bytes None; libporter must
    leave *data NULL and *len 0 then, which is checked here)."""
    data, n = ctypes.c_void_p(), ctypes.c_size_t()
    rc = read(handle, call_id, timeout_ms, ctypes.byref(data), ctypes.byref(n))
    if rc < 0:
        if data or n.value:
            raise Failure('a failed read (%d) left a chunk behind' % rc)
        return rc, None
    return rc, (ctypes.string_at(data, n.value) if rc == 1 else None)


def read_result(read, handle, call_id=0, timeout_ms=5000):
    """One read of a result stream (a cursor): (rc, rows as lists of
    str/None). The chunk's result is freed here."""
    ch = ctypes.c_void_p()
    rc = read(handle, call_id, timeout_ms, ctypes.byref(ch))
    try:
        return rc, (tc.db_rows(ch) if rc == 1 else None)
    finally:
        tc.c.lib.porter_db_result_free(ch)


def next_or_raise(what, rc_chunk):
    """The chunk of a (rc, chunk) read; None at the end; raises on failure."""
    rc, chunk = rc_chunk
    if rc < 0:
        raise failure_of(what, rc)
    return chunk


def cursor_open(sql, chunk_rows, call_id=0, stream_timeout_ms=0):
    cur = ctypes.c_void_p()
    rc = tc.c.lib.porter_db_cursor_open(0, tc.conninfo.encode(), sql.encode(), None, 0,
                                        chunk_rows, stream_timeout_ms, call_id, 5000,
                                        ctypes.byref(cur))
    if rc < 0:
        raise failure_of('cursor_open', rc)
    return cur


def cursor_next(cur):
    """The first column of the next chunk's rows as ints; None at the end."""
    rows = next_or_raise('cursor_read', read_result(tc.c.lib.porter_db_cursor_read, cur))
    return None if rows is None else [int(r[0]) for r in rows]


def reader_open(path, root=None, call_id=0):
    rd = ctypes.c_void_p()
    rc = tc.c.lib.porter_file_reader_open(root, path.encode() if isinstance(path, str) else path,
                                          0, 0, 0, call_id, 5000, ctypes.byref(rd))
    if rc < 0:
        raise failure_of('file_reader_open', rc)
    return rd


def reader_next(rd):
    return next_or_raise('file_reader_read', read_chunk(tc.c.lib.porter_file_reader_read, rd))


def suite_args(usage):
    """The command line every suite takes; reads the PostgreSQL conninfo
    into test_contract. Returns the parsed arguments, or None (after
    saying why) when no PostgreSQL was given."""
    ap = argparse.ArgumentParser(description=usage)
    ap.add_argument('--lib', required=True)
    ap.add_argument('--porterd', required=True)
    ap.add_argument('--pg-state', default=os.environ.get('PORTER_PG_STATE'))
    args = ap.parse_args()
    if not args.pg_state:
        print('FAIL no PostgreSQL: pass --pg-state or set PORTER_PG_STATE (run through ctest)')
        return None
    with open(os.path.join(args.pg_state, 'conninfo')) as f:
        tc.conninfo = f.read().strip()
    return args


def run_suite(args, tests, workers, hard_limit_s, chunk_size=65536, extra=()):
    """Starts porterd (`workers` loops, a private file root "files" with
    `chunk_size` read chunks, then the `extra` arguments) and the HTTP
    test server, binds libporter
    into test_contract, runs `tests` in order, and stops everything.
    Nothing may hang a CI run: the whole suite is bounded by a SIGALRM
    after `hard_limit_s`. Returns the exit status."""
    signal.signal(signal.SIGALRM, lambda *_: os._exit(3))
    signal.alarm(hard_limit_s)
    d = Daemon(args.porterd, extra=['--workers', str(workers)] + list(extra),
               hard_limit_s=hard_limit_s + 30)
    root = os.path.join(d.dir, 'files')
    os.mkdir(root)
    d.extra += ['--file-roots', 'files=' + root, '--file-chunk-size', str(chunk_size)]
    tc.d = d.start()
    tc.httpd = HttpServer(lifetime_s=hard_limit_s + 30).start()
    tc.c = tc.Client(bind_more(tc.bind(args.lib)))
    failed = passed = 0
    for t in tests:
        t0 = time.monotonic()
        try:
            t()
            passed += 1
            print('PASS %s (%.1f s)' % (t.__name__, time.monotonic() - t0))
        except Failure as e:
            failed += 1
            print('FAIL %s: %s' % (t.__name__, e))
    tc.c.lib.porter_thread_disconnect()
    tc.httpd.cleanup()
    if d.stop() != 0:
        failed += 1
        print('FAIL porterd exit status')
    if failed:
        print(d.read_log()[-4000:])
    print('%d of %d tests passed' % (passed, len(tests)))
    return 1 if failed else 0
