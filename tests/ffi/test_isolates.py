#!/usr/bin/env python3
"""The C behaviours the Dart package's pool and codecs rely on (issue 18),
from Python's ctypes, with long-lived threads standing in for the Dart VM's
thread pool and isolates that migrate between them.

  * A paused stream holds no thread: a cursor, an HTTP stream and a file
    reader are opened on one thread and each later chunk is pulled by
    whichever of four threads is free (the pool's workers), with a pause
    in between in which no thread holds them; every byte arrives in order,
    with porterd running several worker loops, so reads really cross them.
  * Streams outlive the connection that opened them (the VM retires idle
    threads, closing their connections): a cursor, an HTTP stream and a
    file reader (by descriptor, porterd's default) are read to the end
    from another thread after the opener disconnected.
  * Abandoned streams are released: a stream freed after a few chunks (a
    `break` out of a chunk loop, a cancelled subscription) with its
    non-waiting *_free, from a thread other than the one that opened it,
    leaves nothing in porterd: no HTTP transfer, no running query in
    PostgreSQL, no extra descriptor (libporter's background thread told
    the daemon).
  * Call ids are explicit (porter_call_id_new, passed to each call): an id
    taken and not used leaves nothing on the thread, so no later call of
    another isolate is refused; a cursor read served from the prefetched
    chunk sends nothing; an id taken on one thread works for a call made
    on another.
  * A stream's reads carry its open's id: porter_cancel_nowait of that id
    (what a pool stream ended early sends) stops a read blocked on another
    thread at once, and the freed cursor's query stops in PostgreSQL.
  * A helper thread that sends a cancel and then disconnects leaves no
    daemon connection behind, although the thread lives on (VM threads do).
  * Typed values: the text form PostgreSQL gives porterd for every type the
    package decodes (dart/test/fixtures/pg_text.json), byte for byte and
    with its type OID, is what the Dart decoders are tested against; and
    every parameter encoding the Dart encoder produces (the fixture's
    'params') is accepted by the server and reads back as expected.
  * Uploads (what PorterPool.httpUpload relies on): an upload opened on
    one thread is written by whichever of four threads is free and
    finished on another, every byte reaching the server in order; a write
    reports a server that answered early; a cancel of the open's id stops
    the next write; an unfinished upload freed from another thread leaves
    no transfer in porterd.
  * What the server says (DbResult.notices, PorterDbException): notices
    with their severity and place among the parts, the parts before a
    failed statement, every error field by its letter, and a cursor's
    notices with the chunk whose rows raised them.
  * Watches (what PorterPool.watch relies on): a short read (50 ms) of a
    quiet watch is an empty batch, not a timeout; events wait in porterd
    between polls and come once each, in order, from reads on any thread;
    the end of the watched directory ends the watch; a freed watch leaves
    porterd's per-uid count.

Usage: test_isolates.py --lib PATH/libporter.so --porterd PATH/porterd
                        --pg-state DIR (tests/support/pg.sh's state directory)
"""
import ctypes
import json
import os
import queue
import sys
import time

here = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, here)
import test_contract as tc  # noqa: E402  (shares its bindings and helpers)
import ffi_support  # noqa: E402
from ffi_support import (cursor_next, cursor_open, read_result, reader_next,  # noqa: E402
                         reader_open, run_suite, suite_args)
from test_contract import Carrier, Failure, check, failure_of  # noqa: E402

HARD_LIMIT_S = 150
FIXTURE = os.path.join(here, '..', '..', 'dart', 'test', 'fixtures', 'pg_text.json')
WORKERS = 4  # the pool's worker threads


def pool_of(n):
    return [Carrier() for _ in range(n)]


def stop_pool(carriers):
    for t in carriers:
        t.jobs.put((None, None))
    for t in carriers:
        t.join()


def pull_everywhere(carriers, opener, reader, closer, pause_after=3, pause_s=0.3,
                    stop_after=None, while_paused=None):
    """Opens a stream on carriers[0], then pulls chunk k on carriers[k % n]
    (one pull at a time, as the pool does), pausing once with no thread
    holding the stream. Stops after `stop_after` chunks when given (then
    the stream is closed on a thread that read none of it). Returns the
    chunks and the threads that pulled them."""
    _, st = carriers[0].call(opener)
    chunks, who = [], set()
    try:
        k = 0
        while stop_after is None or k < stop_after:
            ident, chunk = carriers[(k + 1) % len(carriers)].call(lambda: reader(st))
            if chunk is None:
                break
            chunks.append(chunk)
            who.add(ident)
            k += 1
            if k == pause_after:
                time.sleep(pause_s)  # a paused listener: no thread waits
                if while_paused:
                    while_paused()
    finally:
        # The close runs on a thread that is not the opener's.
        carriers[-1].call(lambda: closer(st))
    return chunks, who


def test_streams_pulled_by_any_thread():
    """A cursor, an HTTP stream and a file reader, each pulled by whichever
    pool thread is free, paused in between: every chunk in order."""
    carriers = pool_of(WORKERS)
    lib = tc.c.lib
    try:
        # PostgreSQL: 20,000 rows in chunks of 500.
        chunks, who = pull_everywhere(
            carriers, lambda: cursor_open('SELECT generate_series(1, 20000)', 500),
            cursor_next, lib.porter_db_cursor_free)
        rows = [r for ch in chunks for r in ch]
        check(rows == list(range(1, 20001)), 'every row once, in order (%d rows)' % len(rows))
        check(len(who) == WORKERS, 'pulled by %d threads' % len(who))

        # HTTP: 1 MB in 16 KiB chunks; alive in porterd while paused.
        def alive():
            check(tc.c.resources()[2] == 1, 'the paused transfer is alive in porterd')
        chunks, who = pull_everywhere(
            carriers, lambda: tc.stream_open('/bin/1000000', chunk_size=16384),
            tc.stream_read, lib.porter_http_stream_free, while_paused=alive)
        check(b''.join(chunks) == tc.pattern(0, 1000000), 'every HTTP byte once, in order')
        check(len(who) == WORKERS, 'pulled by %d threads' % len(who))
        check(tc.c.await_transfers(0) == 0, 'no transfer left')

        # Files: 1 MiB in the daemon's 64 KiB chunks.
        data = os.urandom(1 << 20)
        rc = lib.porter_file_write(None, b'pulled.bin', data, len(data), 3, 0, 0, 5000)
        if rc < 0:
            raise failure_of('file_write', rc)
        chunks, who = pull_everywhere(carriers, lambda: reader_open('pulled.bin'),
                                      reader_next, lib.porter_file_reader_free)
        check(b''.join(chunks) == data, 'every file byte once, in order')
        check(len(chunks) >= 16 and len(who) == WORKERS,
              '%d chunks pulled by %d threads' % (len(chunks), len(who)))
    finally:
        stop_pool(carriers)


def test_streams_outlive_the_opening_connection():
    """The VM retires idle threads, and a retired thread's connection
    closes: a pool stream must not depend on the connection of the worker
    that opened it. A cursor, an HTTP stream and a file reader (by
    descriptor: the reads are the client's own) opened on one thread are
    read on from another after the opener disconnected."""
    lib = tc.c.lib
    tc.file_write('outlive.bin', tc.pattern(0, 300000))
    for opener, reader, closer, what in (
            (lambda: reader_open('outlive.bin', root=b'files'), reader_next,
             lib.porter_file_reader_free, 'file reader'),
            (lambda: cursor_open('SELECT generate_series(1, 1000)', 100), cursor_next,
             lib.porter_db_cursor_free, 'cursor'),
            (lambda: tc.stream_open('/bin/200000', chunk_size=16384), tc.stream_read,
             lib.porter_http_stream_free, 'HTTP stream')):
        a, b = pool_of(2)
        try:
            _, st = a.call(opener)
            _, first = a.call(lambda: reader(st))
            a.call(lib.porter_thread_disconnect)
            got = [first]
            try:
                while True:
                    _, chunk = b.call(lambda: reader(st))
                    if chunk is None:
                        break
                    got.append(chunk)
            finally:
                b.call(lambda: closer(st))
            if what == 'cursor':
                check([r for ch in got for r in ch] == list(range(1, 1001)),
                      'every row after the opener disconnected')
            else:
                size = 300000 if what == 'file reader' else 200000
                check(b''.join(got) == tc.pattern(0, size),
                      'every byte of the %s after the opener disconnected' % what)
        finally:
            stop_pool([a, b])
    check(tc.c.await_transfers(0) == 0, 'no transfer left')


def active_queries(marker):
    rows, _, _ = tc.db_query(0, "SELECT count(*) FROM pg_stat_activity "
                                "WHERE state = 'active' AND query LIKE $1 "
                                "AND pid <> pg_backend_pid()",
                             params=['%' + marker + '%'])
    return int(rows[0][0])


def await_value(fn, want, seconds=5):
    until = time.monotonic() + seconds
    v = fn()
    while v != want and time.monotonic() < until:
        time.sleep(0.02)
        v = fn()
    return v


def test_abandoned_streams_released():
    """Streams closed after three chunks, on a thread that read none of
    them (what the pool does when a subscription is cancelled, and what
    the synchronous API's chunk loops do on `break`), leave nothing in
    porterd or PostgreSQL."""
    carriers = pool_of(WORKERS)
    lib = tc.c.lib
    # Descriptors other than PostgreSQL connections (the pool opens those
    # as it likes).
    def fds():
        fd, db, _ = tc.c.resources()
        return fd - db
    fds0 = fds()
    try:
        for k in range(3):
            marker = 'abandoned_cursor_%d' % k
            sql = ('SELECT g, pg_sleep(0.001) AS %s FROM generate_series(1, 1000000) g'
                   % marker)
            def running():
                check(active_queries(marker) == 1, 'the query runs while it is read')
            chunks, _ = pull_everywhere(carriers, lambda: cursor_open(sql, 100),
                                        cursor_next, lib.porter_db_cursor_free,
                                        pause_after=2, pause_s=0, stop_after=3,
                                        while_paused=running)
            check(len(chunks) == 3, 'three chunks before the break')
            check(await_value(lambda: active_queries(marker), 0) == 0,
                  'the abandoned query no longer runs in PostgreSQL')
            chunks, _ = pull_everywhere(
                carriers, lambda: tc.stream_open('/bin/50000000', chunk_size=16384),
                tc.stream_read, lib.porter_http_stream_free, pause_after=99, stop_after=3)
            check(len(chunks) == 3, 'three HTTP chunks before the break')
            check(tc.c.await_transfers(0) == 0, 'the abandoned transfer is gone')
            chunks, _ = pull_everywhere(carriers, lambda: reader_open('pulled.bin'),
                                        reader_next, lib.porter_file_reader_free,
                                        pause_after=99, stop_after=3)
            check(len(chunks) == 3, 'three file chunks before the break')
    finally:
        stop_pool(carriers)
    # Settled at or below the start (a pooled connection still being
    # opened or closed counts as a descriptor, not as a connection).
    until = time.monotonic() + 5
    while fds() > fds0 and time.monotonic() < until:
        time.sleep(0.02)
    check(fds() <= fds0, 'porterd holds no extra descriptor (%d -> %d)' % (fds0, fds()))


def test_call_id_explicit():
    """Call ids are given per call (issue 18, item 3): an id taken and never
    used leaves nothing behind on the thread, so no later call of another
    isolate on that thread is refused; a cancel reaches exactly the call
    that carries the id, wherever it runs."""
    lib = tc.c.lib
    a, b = pool_of(2)
    try:
        def cancel(call_id):
            return b.call(lambda: lib.porter_cancel(call_id, 2000))[1]

        # Taken and not used: the daemon remembers the cancel, but the
        # thread's next call has its own id and runs.
        _, rid = a.call(lib.porter_call_id_new)
        check(rid != 0, 'an id is never 0')
        check(cancel(rid) == tc.PORTER_E_NOT_FOUND, 'nothing runs with the id yet')
        _, rc = a.call(lambda: lib.porter_ping(None, 0, 0, 2000))
        check(rc == 0, 'an unused id does not reach the next call (%d)' % rc)
        # The call that does carry the cancelled id is refused.
        _, rc = a.call(lambda: lib.porter_ping(None, 0, rid, 2000))
        check(rc == tc.PORTER_E_CANCELLED, 'the call with the cancelled id (%d)' % rc)

        # A cursor read served from the prefetched chunk sends nothing.
        _, cur = a.call(lambda: cursor_open('SELECT generate_series(1, 10)', 100))
        try:
            _, rows = a.call(lambda: cursor_next(cur))
            check(rows == list(range(1, 11)), 'the prefetched chunk')
            _, rc = a.call(lambda: lib.porter_ping(None, 0, 0, 2000))
            check(rc == 0, 'nothing pending on the thread (%d)' % rc)
        finally:
            a.call(lambda: lib.porter_db_cursor_close(cur, 1000))

        # The id taken on one thread, the call made on another (an isolate
        # that moved): the cancel stops it, and the thread stays clean.
        for k in range(3):
            got = {}
            rid = lib.porter_call_id_new()

            def delayed():
                got['started'] = True
                t0 = time.monotonic()
                rc = lib.porter_ping_delay(None, 0, 5000, rid, 10000)
                return rc, time.monotonic() - t0

            result = queue.Queue()
            a.jobs.put((delayed, result))
            until = time.monotonic() + 5
            while 'started' not in got and time.monotonic() < until:
                time.sleep(0.001)
            time.sleep(0.05)  # let the request reach porterd
            check(cancel(rid) == 0, 'the running call was found and stopped')
            _, (rc, dt), err = result.get(timeout=10)
            if err:
                raise err
            check(rc == tc.PORTER_E_CANCELLED and dt < 2.5,
                  'cancelled in %.2f s (%d)' % (dt, rc))
            _, rc = a.call(lambda: lib.porter_ping(None, 0, 0, 2000))
            check(rc == 0, 'the next call on the thread is not refused (%d)' % rc)
    finally:
        stop_pool([a, b])


def test_open_id_stops_a_read_in_flight():
    """What a pool stream ended early (a token, a cancelled subscription)
    does: the pool picked the open's call id, a read blocks on a worker,
    and porter_cancel_nowait(open's id) from the pool's isolate stops that
    read at once, well before its timeout; the cursor is then freed from
    yet another thread and the query no longer runs in PostgreSQL."""
    lib = tc.c.lib
    a, b = pool_of(2)
    try:
        for k in range(3):
            marker = 'open_id_%d' % k
            # The first chunk comes with the open; the next needs 8 s. The
            # wide rows make the server flush rows 1-5 before it sleeps.
            sql = ("SELECT g, repeat('x', CASE WHEN g <= 6 THEN 20000 ELSE 1 END), "
                   'pg_sleep(CASE WHEN g > 6 THEN 2 ELSE 0 END) AS %s '
                   'FROM generate_series(1, 100) g' % marker)
            open_id = lib.porter_call_id_new()
            _, cur = a.call(lambda: cursor_open(sql, 5, open_id))
            _, first = a.call(lambda: cursor_next(cur))
            check(first == [1, 2, 3, 4, 5], 'the prefetched chunk')
            result = queue.Queue()

            def slow_read():
                t0 = time.monotonic()
                rc, _ = read_result(lib.porter_db_cursor_read, cur, timeout_ms=20000)
                return rc, time.monotonic() - t0

            b.jobs.put((slow_read, result))
            check(await_value(lambda: active_queries(marker), 1) == 1,
                  'the query runs on the server')
            time.sleep(0.5)  # the read is in porterd, waiting for its rows
            check(lib.porter_cancel_nowait(open_id) == 0, 'cancel queued')
            _, (rc, dt), err = result.get(timeout=25)
            if err:
                raise err
            check(rc == tc.PORTER_E_CANCELLED and dt < 5,
                  'the read in flight stopped by the open\'s id: %d after %.2f s' % (rc, dt))
            b.call(lambda: lib.porter_db_cursor_free(cur))
            check(await_value(lambda: active_queries(marker), 0) == 0,
                  'the query no longer runs in PostgreSQL')
    finally:
        stop_pool([a, b])


def test_cancel_helper_leaves_no_connection():
    """The pool sends a cancel from a helper that then disconnects its
    thread: porterd's connection count returns to what it was although
    the thread lives on, as the VM's threads do."""
    lib = tc.c.lib
    # Only this thread's connection once earlier tests' threads are gone
    # (porterd counts a closed connection a moment later).
    base = tc.c.await_connections(1)
    check(base == 1, 'earlier threads left %d connections' % (base - 1))
    helper = Carrier()
    try:
        for _ in range(5):
            _, rc = helper.call(lambda: lib.porter_cancel(0xfeedface, 2000))
            check(rc == tc.PORTER_E_NOT_FOUND, 'a cancel of nothing: %d' % rc)
            check(tc.c.await_connections(base + 1) == base + 1,
                  'the helper thread holds one connection')
            helper.call(lib.porter_thread_disconnect)
            check(tc.c.await_connections(base) == base,
                  'after the disconnect the live helper thread holds none')
    finally:
        stop_pool([helper])


def test_pg_text_forms():
    """Every case of the Dart decoders' fixture, against the real server:
    same type OID, same bytes."""
    with open(FIXTURE, encoding='utf-8') as f:
        cases = json.load(f)['cases']
    lib = tc.c.lib
    session = tc.db_open()
    try:
        for case in cases:
            tc.db_query(session, 'RESET ALL')
            for stmt in case.get('setup', []):
                tc.db_query(session, stmt)
            out = ctypes.c_void_p()
            rc = lib.porter_db_query(session, None, case['sql'].encode(), None, 0, 0, 5000, ctypes.byref(out))
            try:
                if rc < 0:
                    raise failure_of(case['sql'], rc)
                oid = lib.porter_db_ftype(out, 0)
                text = tc.db_rows(out)[0][0]
            finally:
                lib.porter_db_result_free(out)
            want = case['text'].encode('utf-8')
            check(oid == case['oid'], '%s: OID %d, fixture %d' % (case['sql'], oid, case['oid']))
            check(text == want, '%s: %r, fixture %r' % (case['sql'], text, want))
    finally:
        lib.porter_db_close(session, 0, 5000)
    print('  %d text forms match the fixture' % len(cases))


def test_pg_param_forms():
    """Every parameter encoding of the fixture (what the Dart encoder
    sends: text or binary, and a type OID) against the real server: it is
    accepted, and the answer has the expected text and type."""
    with open(FIXTURE, encoding='utf-8') as f:
        cases = json.load(f)['params']
    lib = tc.c.lib
    session = tc.db_open()
    try:
        tc.db_query(session, "SET TimeZone = 'UTC'")
        for case in cases:
            sent = case['sent']
            arr = (tc.DbParam * 1)()
            keep = None
            if sent is None:
                arr[0] = tc.DbParam(None, 0, 0, case['oid'])
            else:
                raw = bytes.fromhex(sent) if case.get('binary') else sent.encode('utf-8')
                keep = ctypes.create_string_buffer(raw, max(1, len(raw)))
                arr[0] = tc.DbParam(ctypes.cast(keep, ctypes.c_void_p), len(raw),
                                    int(bool(case.get('binary'))), case['oid'])
            out = ctypes.c_void_p()
            rc = lib.porter_db_query(session, None, case['sql'].encode(), arr, 1, 0, 5000, ctypes.byref(out))
            try:
                if rc < 0:
                    raise Failure('%s with %r (OID %d): %s' % (
                        case['sql'], sent, case['oid'],
                        lib.porter_db_message(out).decode() if out else rc))
                oid = lib.porter_db_ftype(out, 0)
                back = tc.db_rows(out)[0][0]
            finally:
                lib.porter_db_result_free(out)
                del keep
            want = None if case['back'] is None else case['back'].encode('utf-8')
            check(oid == case['back_oid'], '%r: OID %d, fixture %d' % (sent, oid, case['back_oid']))
            check(back == want, '%r: back %r, fixture %r' % (sent, back, want))
    finally:
        lib.porter_db_close(session, 0, 5000)
    print('  %d parameter encodings accepted as the fixture says' % len(cases))


def test_file_operations():
    """What PorterFileException's kinds and the package's file calls rely
    on (dart/test/files_test.dart makes the same calls): mkdir with and
    without PARENTS (an existing directory fine with it, EXISTS without),
    copy returning its size and refusing an existing target with
    NO_REPLACE, rename with and without NO_REPLACE, escapes refused with
    FILE_ESCAPE by all three, and lstat reporting a symlink that stat
    follows."""
    lib = tc.c.lib
    fs = ffi_support
    root = os.path.join(tc.d.dir, 'files')
    check(lib.porter_file_mkdir(b'files', b'd/e/f', 0, fs.PORTER_FILE_PARENTS, 0, 5000) == 0,
          'mkdir -p')
    info = tc.FileInfo()
    check(lib.porter_file_stat(b'files', b'd/e/f', 0, 5000, ctypes.byref(info)) == 0
          and info.type == fs.PORTER_FILE_TYPE_DIRECTORY, 'a directory (%d)' % info.type)
    rc = lib.porter_file_mkdir(b'files', b'd/e', 0, fs.PORTER_FILE_PARENTS, 0, 5000)
    check(rc == 0, 'mkdir -p of an existing directory (%d)' % rc)
    rc = lib.porter_file_mkdir(b'files', b'd/e', 0, 0, 0, 5000)
    check(rc == fs.PORTER_E_FILE_EXISTS, 'mkdir of an existing directory (%d)' % rc)
    rc = lib.porter_file_mkdir(b'files', b'../up', 0, fs.PORTER_FILE_PARENTS, 0, 5000)
    check(rc == tc.PORTER_E_FILE_ESCAPE, 'mkdir escaping (%d)' % rc)
    tc.file_write('d/a.bin', b'\0\1\0\2\0')
    size = ctypes.c_uint64(7)
    rc = lib.porter_file_copy(b'files', b'd/a.bin', b'd/e/b.bin', 0, 0, 5000, ctypes.byref(size))
    check(rc == 0 and size.value == 5, 'copy returns its size (%d, %d)' % (rc, size.value))
    check(tc.file_read('d/e/b.bin') == b'\0\1\0\2\0', 'the copy is byte-exact')
    rc = lib.porter_file_copy(b'files', b'd/a.bin', b'd/e/b.bin', fs.PORTER_FILE_NO_REPLACE,
                              0, 5000, ctypes.byref(size))
    check(rc == fs.PORTER_E_FILE_EXISTS and size.value == 0,
          'copy onto an existing target with NO_REPLACE (%d, %d)' % (rc, size.value))
    rc = lib.porter_file_rename(b'files', b'd/a.bin', b'd/e/b.bin', fs.PORTER_FILE_NO_REPLACE,
                                0, 5000)
    check(rc == fs.PORTER_E_FILE_EXISTS, 'rename onto an existing target (%d)' % rc)
    rc = lib.porter_file_rename(b'files', b'd/a.bin', b'd/e/f/c.bin', 0, 0, 5000)
    check(rc == 0, 'rename (%d)' % rc)
    rc = lib.porter_file_stat(b'files', b'd/a.bin', 0, 5000, ctypes.byref(info))
    check(rc == tc.PORTER_E_FILE_NOT_FOUND, 'the source is gone (%d)' % rc)
    rc = lib.porter_file_rename(b'files', b'd/e/f/c.bin', b'../c.bin', 0, 0, 5000)
    check(rc == tc.PORTER_E_FILE_ESCAPE, 'rename escaping (%d)' % rc)
    rc = lib.porter_file_copy(b'files', b'd/e/b.bin', b'../c.bin', 0, 0, 5000, None)
    check(rc == tc.PORTER_E_FILE_ESCAPE, 'copy escaping (%d)' % rc)
    os.symlink('b.bin', os.path.join(root, 'd/e/link.bin'))
    rc = lib.porter_file_stat(b'files', b'd/e/link.bin', 0, 5000, ctypes.byref(info))
    check(rc == 0 and info.type == tc.PORTER_FILE_TYPE_REGULAR and info.size == 5,
          'stat follows a symlink inside the root (%d, type %d)' % (rc, info.type))
    rc = lib.porter_file_lstat(b'files', b'd/e/link.bin', 0, 5000, ctypes.byref(info))
    check(rc == 0 and info.type == fs.PORTER_FILE_TYPE_SYMLINK,
          'lstat reports the symlink (%d, type %d)' % (rc, info.type))
    for f in (b'd/e/link.bin', b'd/e/b.bin', b'd/e/f/c.bin'):
        check(lib.porter_file_delete(b'files', f, 0, 0, 5000) == 0, 'delete %s' % f)
    for d in (b'd/e/f', b'd/e', b'd'):
        check(lib.porter_file_delete(b'files', d, 1, 0, 5000) == 0, 'rmdir %s' % d)


def upload_open(path, body_size=-1, call_id=0, method=b'POST'):
    up = ctypes.c_void_p()
    opts = tc.HttpOptions(follow_redirects=1)
    rc = tc.c.lib.porter_http_upload_open(method, tc.url(path), None, 0, body_size,
                                          ctypes.byref(opts), call_id, 5000, ctypes.byref(up))
    if rc < 0:
        raise failure_of('upload open %s' % path, rc)
    return up


def upload_write(up, data, timeout_ms=5000):
    buf = ctypes.create_string_buffer(data, max(1, len(data)))
    return tc.c.lib.porter_http_upload_write(up, buf, len(data), 0, timeout_ms)


def upload_finish(up):
    st = ctypes.c_void_p()
    rc = tc.c.lib.porter_http_upload_finish(up, 0, 5000, ctypes.byref(st))
    if rc < 0:
        raise failure_of('upload finish', rc)
    return st


def test_upload_written_by_any_thread(size=3_000_000, piece=256 << 10):
    """What PorterPool.httpUpload relies on (dart/lib/src/pool_upload.dart):
    an upload opened on one thread is written by whichever of four threads
    is free, one write at a time, and finished on yet another, and the
    server gets every byte in order; the free after a finish sends
    nothing; a write returns 1 once the server answered early (the pool
    then stops pulling the body); a cancel of the open's id stops the next
    write; an unfinished upload freed from another thread (the pool's
    abort) leaves no transfer in porterd."""
    lib = tc.c.lib
    carriers = pool_of(WORKERS)
    try:
        body = tc.pattern(0, size)
        _, up = carriers[0].call(lambda: upload_open('/digest'))
        who = set()
        for k, at in enumerate(range(0, size, piece)):
            ident, rc = carriers[(k + 1) % WORKERS].call(
                lambda: upload_write(up, body[at:at + piece]))
            check(rc == 0, 'write %d (%d)' % (k, rc))
            who.add(ident)
        check(len(who) == WORKERS, 'every thread wrote (%d)' % len(who))
        _, st = carriers[2].call(lambda: upload_finish(up))
        carriers[3].call(lambda: lib.porter_http_upload_free(up))
        text = b''
        while True:
            _, chunk = carriers[1].call(lambda: tc.stream_read(st))
            if chunk is None:
                break
            text += chunk
        check(text.startswith(b'%d ' % size) and text.endswith(b' chunked pattern'),
              'the server got every byte in order: %r' % text)
        check(lib.porter_http_stream_close(st, 5000) == 0, 'stream close')

        # The server answers without reading: a write says so (1).
        _, up = carriers[0].call(lambda: upload_open('/early/413'))
        rc, k = 0, 0
        while rc == 0 and k < 256:
            _, rc = carriers[k % WORKERS].call(lambda: upload_write(up, b'x' * (1 << 20)))
            k += 1
        check(rc == 1, 'a write reports the early answer (%d after %d MiB)' % (rc, k))
        _, st = carriers[1].call(lambda: upload_finish(up))
        lib.porter_http_upload_free(up)
        check(tc.c.lib.porter_http_response_status(lib.porter_http_stream_response(st)) == 413,
              'the early answer is the response')
        lib.porter_http_stream_free(st)

        # A cancel of the open's id (what the pool's token sends) stops the
        # next write; the free of the unfinished upload aborts it.
        cid = lib.porter_call_id_new()
        _, up = carriers[0].call(lambda: upload_open('/digest', call_id=cid))
        _, rc = carriers[1].call(lambda: upload_write(up, b'y' * 1000))
        check(rc == 0, 'first write (%d)' % rc)
        check(lib.porter_cancel_nowait(cid) == 0, 'cancel queued')
        rc = tc.PORTER_E_CANCELLED + 1
        until = time.monotonic() + 5
        while rc != tc.PORTER_E_CANCELLED and time.monotonic() < until:
            _, rc = carriers[2].call(lambda: upload_write(up, b'y' * 1000))
            time.sleep(0.02)
        check(rc == tc.PORTER_E_CANCELLED, 'the write after the cancel (%d)' % rc)
        _, up2 = carriers[0].call(lambda: upload_open('/digest'))
        carriers[1].call(lambda: upload_write(up2, b'z' * 5000))
        carriers[3].call(lambda: lib.porter_http_upload_free(up))
        carriers[3].call(lambda: lib.porter_http_upload_free(up2))
        check(tc.c.await_transfers(0, seconds=10) == 0, 'the freed uploads are gone')
    finally:
        stop_pool(carriers)


def raw_query(session, sql):
    """porter_db_query of sql (no parameters): (rc, result); the caller
    frees the result."""
    out = ctypes.c_void_p()
    rc = tc.c.lib.porter_db_query(session, None if session else tc.conninfo.encode(),
                                  sql.encode(), None, 0, 0, 5000, ctypes.byref(out))
    return rc, out


def notices_of(res):
    """(severity, message, before) of each notice of res, and the dropped count."""
    lib = tc.c.lib
    return ([(lib.porter_db_notice_field(res, i, ord('S')).decode(),
              lib.porter_db_notice_field(res, i, ord('M')).decode(),
              lib.porter_db_notice_before(res, i))
             for i in range(lib.porter_db_nnotices(res))],
            lib.porter_db_notices_dropped(res))


def test_db_notices_and_error_fields():
    """What DbResult.notices and PorterDbException read (dart/lib/src/
    db_diag.dart, dart/test/db_test.dart): notices with their severity and
    place among the parts; a failing multi-statement string keeps the
    parts before the failure and the notices; every error field by its
    PG_DIAG letter (position, context, schema, table, column, constraint);
    a cursor's notices come with the chunk whose rows raised them."""
    lib = tc.c.lib
    rc, res = raw_query(0, "SELECT 1; DO $$ BEGIN RAISE NOTICE 'hello %', 42; END $$; "
                           'DROP TABLE IF EXISTS ffi_no_such_table')
    try:
        check(rc == 0 and lib.porter_db_nresults(res) == 3, 'three parts (%d)' % rc)
        got, dropped = notices_of(res)
        # Where a notice falls among the parts is as libpq parsed it (it may
        # read a notice before handing over the result ahead of it): in
        # order, and within the parts.
        check([(sv, m) for sv, m, _ in got] ==
              [('NOTICE', 'hello 42'),
               ('NOTICE', 'table "ffi_no_such_table" does not exist, skipping')]
              and dropped == 0, 'the notices: %s' % (got,))
        before = [b for _, _, b in got]
        check(before == sorted(before) and before[-1] <= 3, 'placed in order: %s' % before)
    finally:
        lib.porter_db_result_free(res)
    s = tc.db_open()
    try:
        tc.db_query(s, 'CREATE TEMP TABLE ffi_diag (k int PRIMARY KEY)')
        tc.db_query(s, 'INSERT INTO ffi_diag VALUES (1)')
        rc, res = raw_query(s, "CREATE TEMP TABLE ffi_diag2 (k int); "
                               "DO $$ BEGIN RAISE NOTICE 'before'; END $$; "
                               'INSERT INTO ffi_diag VALUES (1)')
        try:
            check(rc == tc.PORTER_E_DB, 'the duplicate fails (%d)' % rc)
            n = lib.porter_db_nresults(res)
            tags = []
            for i in range(n):
                lib.porter_db_select(res, i)
                tags.append(lib.porter_db_cmdstatus(res).decode())
            check(tags[:2] == ['CREATE TABLE', 'DO'], 'the parts before the failure: %s' % tags)
            check([m for _, m, _ in notices_of(res)[0]] == ['before'], 'and its notice')
            f = {ch: lib.porter_db_error_field(res, ord(ch)).decode() for ch in 'SCMDstcn'}
            check(f['S'] == 'ERROR' and f['C'] == '23505' and f['t'] == 'ffi_diag'
                  and f['n'] == 'ffi_diag_pkey' and f['s'].startswith('pg_temp')
                  and f['D'] == 'Key (k)=(1) already exists.',
                  'the error fields: %s' % f)
            check(lib.porter_db_error_field(res, ord('Z')) == b'', 'an unknown field is ""')
        finally:
            lib.porter_db_result_free(res)
        rc, res = raw_query(s, 'SELECT 1,\n  2 FROM FROM')
        try:
            check(rc == tc.PORTER_E_DB, 'syntax error (%d)' % rc)
            pos = lib.porter_db_error_field(res, ord('P')).decode()
            check(pos == str(len('SELECT 1,\n  2 FROM ') + 1), 'the position (%r)' % pos)
        finally:
            lib.porter_db_result_free(res)
        tc.db_query(s, "CREATE FUNCTION pg_temp.ffi_noisy(int) RETURNS int LANGUAGE plpgsql "
                       "AS $$ BEGIN RAISE NOTICE 'row %', $1; RETURN 1 / ($1 - 6); END $$")
        rc, res = raw_query(s, 'SELECT pg_temp.ffi_noisy(6)')
        try:
            ctx = lib.porter_db_error_field(res, ord('W')).decode()
            check(rc == tc.PORTER_E_DB and 'ffi_noisy(integer) line 1 at RETURN' in ctx,
                  'the context (%d, %r)' % (rc, ctx))
        finally:
            lib.porter_db_result_free(res)
        rc, res = raw_query(s, 'INSERT INTO ffi_diag VALUES (NULL)')
        try:
            col = lib.porter_db_error_field(res, ord('c')).decode()
            check(rc == tc.PORTER_E_DB and col == 'k', 'the column (%d, %r)' % (rc, col))
        finally:
            lib.porter_db_result_free(res)
        # A cursor on the session: each chunk carries the notices of its rows.
        cur = ctypes.c_void_p()
        rc = lib.porter_db_cursor_open(s, None, b'SELECT pg_temp.ffi_noisy(g) FROM '
                                       b'generate_series(1, 5) g', None, 0, 2, 0, 0, 5000,
                                       ctypes.byref(cur))
        check(rc == 0, 'cursor open (%d)' % rc)
        seen, rows = [], 0
        try:
            for _ in range(10):
                ch = ctypes.c_void_p()
                rc = lib.porter_db_cursor_read(cur, 0, 5000, ctypes.byref(ch))
                try:
                    check(rc >= 0, 'cursor read (%d)' % rc)
                    if rc == 0:
                        break
                    rows += lib.porter_db_ntuples(ch)
                    seen += [m for _, m, _ in notices_of(ch)[0]]
                finally:
                    lib.porter_db_result_free(ch)
        finally:
            lib.porter_db_cursor_close(cur, 5000)
        check(rows == 5 and seen == ['row %d' % i for i in range(1, 6)],
              'every notice once, in order, with the chunks (%d rows, %s)' % (rows, seen))
    finally:
        lib.porter_db_close(s, 0, 5000)


def watch_read(w, timeout_ms):
    """(events as (kind, name, new_name), ended) of one read; raises on failure."""
    lib = tc.c.lib
    ev = ctypes.c_void_p()
    rc = lib.porter_file_watch_read(w, 0, timeout_ms, ctypes.byref(ev))
    if rc < 0:
        raise failure_of('watch read', rc)
    try:
        out = []
        kind, name, new = ctypes.c_int(), ctypes.c_char_p(), ctypes.c_char_p()
        for i in range(lib.porter_file_events_count(ev)):
            check(lib.porter_file_events_get(ev, i, ctypes.byref(kind), ctypes.byref(name),
                                             ctypes.byref(new)) == 0, 'event %d' % i)
            out.append((kind.value, name.value.decode(), new.value.decode()))
        return out, lib.porter_file_events_ended(ev) == 1
    finally:
        lib.porter_file_events_free(ev)


def test_watch_polled_by_any_thread():
    """What PorterPool.watch relies on (dart/lib/src/pool_files.dart): a
    watch opened on one thread is read by whichever of four threads is
    free; a short read (50 ms, the pool's pollWait) that finds nothing
    returns an empty batch, not an error; events wait in porterd between
    polls and come once each, in order, named relative to the root; the
    watched directory going away ends the watch, and later reads return
    empty ended batches at once; a watch freed from another thread (a
    cancelled subscription) is gone from porterd's per-uid count."""
    lib = tc.c.lib
    fs = ffi_support
    carriers = pool_of(WORKERS)
    try:
        check(lib.porter_file_mkdir(b'files', b'watched', 0, 0, 0, 5000) == 0, 'mkdir')
        w = ctypes.c_void_p()
        _, rc = carriers[0].call(lambda: lib.porter_file_watch_open(
            b'files', b'watched', 0, 5000, ctypes.byref(w)))
        check(rc == 0 and lib.porter_file_watch_is_dir(w) == 1, 'watch open (%d)' % rc)
        t0 = time.monotonic()
        _, (got, ended) = carriers[1].call(lambda: watch_read(w, 50))
        check(got == [] and not ended and time.monotonic() - t0 < 2,
              'a short read of a quiet watch is an empty batch (%s)' % got)
        tc.file_write('watched/a.txt', b'1')
        check(lib.porter_file_rename(b'files', b'watched/a.txt', b'watched/b.txt', 0, 0,
                                     5000) == 0, 'rename')
        check(lib.porter_file_delete(b'files', b'watched/b.txt', 0, 0, 5000) == 0, 'delete')
        time.sleep(0.2)  # a pause between polls: the events wait in porterd
        seen, k = [], 0
        until = time.monotonic() + 10
        while time.monotonic() < until and (fs.PORTER_FILE_EVENT_DELETED, 'watched/b.txt', '') \
                not in seen:
            _, (got, ended) = carriers[k % WORKERS].call(lambda: watch_read(w, 50))
            seen += got
            k += 1
        kinds = [(e[0], e[1]) for e in seen]
        check((fs.PORTER_FILE_EVENT_CREATED, 'watched/a.txt') in kinds, 'created: %s' % seen)
        check((fs.PORTER_FILE_EVENT_MOVED, 'watched/a.txt', 'watched/b.txt') in seen,
              'moved: %s' % seen)
        check(seen.index((fs.PORTER_FILE_EVENT_MOVED, 'watched/a.txt', 'watched/b.txt'))
              < seen.index((fs.PORTER_FILE_EVENT_DELETED, 'watched/b.txt', '')),
              'in order: %s' % seen)
        check(len(seen) == len(set(seen)) or all(e[0] == fs.PORTER_FILE_EVENT_MODIFIED
                                                 for e in seen if seen.count(e) > 1),
              'each event once: %s' % seen)
        # The watched directory goes: the watch ends.
        check(lib.porter_file_delete(b'files', b'watched', 1, 0, 5000) == 0, 'rmdir')
        until = time.monotonic() + 10
        ended = False
        while not ended and time.monotonic() < until:
            _, (got, ended) = carriers[k % WORKERS].call(lambda: watch_read(w, 50))
            k += 1
        check(ended, 'the watch ended with its directory')
        t0 = time.monotonic()
        _, (got, ended) = carriers[2].call(lambda: watch_read(w, 5000))
        check(got == [] and ended and time.monotonic() - t0 < 1,
              'later reads: empty ended batches at once')
        carriers[3].call(lambda: lib.porter_file_watch_free(w))
        # A live watch freed from another thread leaves porterd's count.
        check(lib.porter_file_mkdir(b'files', b'watched2', 0, 0, 0, 5000) == 0, 'mkdir 2')
        before = file_streams()
        w2 = ctypes.c_void_p()
        _, rc = carriers[0].call(lambda: lib.porter_file_watch_open(
            b'files', b'watched2', 0, 5000, ctypes.byref(w2)))
        check(rc == 0 and file_streams() == before + 1, 'the watch counts (%d)' % rc)
        carriers[1].call(lambda: watch_read(w2, 50))
        carriers[2].call(lambda: lib.porter_file_watch_free(w2))
        until = time.monotonic() + 10
        while file_streams() > before and time.monotonic() < until:
            time.sleep(0.02)
        check(file_streams() == before, 'the freed watch is gone from porterd')
        check(lib.porter_file_delete(b'files', b'watched2', 1, 0, 5000) == 0, 'rmdir 2')
    finally:
        stop_pool(carriers)


def file_streams():
    """The file streams porterd counts for this process's uid."""
    lib = tc.c.lib
    snap = ctypes.c_void_p()
    check(lib.porter_stats(0, 5000, ctypes.byref(snap)) == 0, 'stats')
    try:
        u = ffi_support.UidUsage()
        total = 0
        for i in range(lib.porter_stats_uids(snap)):
            check(lib.porter_stats_uid(snap, i, ctypes.byref(u)) == 0, 'uid %d' % i)
            total += u.file_streams
        return total
    finally:
        lib.porter_stats_free(snap)


def main():
    args = suite_args(__doc__)
    if args is None:
        return 1
    # Several worker loops, so that reads from other threads really cross
    # from one loop to another.
    return run_suite(args, [test_streams_pulled_by_any_thread,
                            test_streams_outlive_the_opening_connection,
                            test_abandoned_streams_released,
                            test_call_id_explicit, test_open_id_stops_a_read_in_flight,
                            test_cancel_helper_leaves_no_connection,
                            test_pg_text_forms, test_pg_param_forms,
                            test_file_operations, test_watch_polled_by_any_thread, test_upload_written_by_any_thread,
                            test_db_notices_and_error_fields],
                     workers=3, hard_limit_s=HARD_LIMIT_S)


if __name__ == '__main__':
    sys.exit(main())
