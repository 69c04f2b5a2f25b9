"""The API v1 rules of porter.h, checked from its declarations.

shape_breaches reads rules 1, 2, 4, 5, 8 and 9 off the prototypes. The
probes check rule 10 ("every pointer argument says whether NULL is
accepted; where it is not, NULL gives PORTER_E_INVAL ... and never a
crash") and rule 6 (out-parameters are NULL or zero after a failure),
checked for every public function from its declaration.

The prototypes are read from porter.h itself, so a function added later is
probed without anyone remembering to list it. For each function and each
of its pointer parameters, one probe calls it with that parameter NULL and
every other argument valid: real handles (a stats snapshot, an HTTP
response, a db cursor, a file reader...) made against the running porterd
and HTTP test server, real strings, zero lengths. Each probe runs in a
forked child, so a crash or a hang is reported as that probe's failure
instead of ending the suite. What a probe must give:

  * a pointer porter.h says may be NULL (ACCEPTS_NULL): no crash and no
    PORTER_E_INVAL;
  * any other pointer of a function returning int: PORTER_E_INVAL, with
    every `**out` set to NULL and every integer or struct out zeroed;
  * a NULL object given to an accessor: no crash, and the value porter.h
    documents for it (NULL_OBJECT);
  * a NULL data pointer with a non-zero length (bytes, headers, params):
    PORTER_E_INVAL.
"""
import ctypes
import json
import os
import re
import select
import signal
import time

import test_contract as tc
from ffi_support import UidUsage
from test_contract import check

HEADER = os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', '..', 'client',
                      'include', 'porter.h')
SENTINEL = 0x5eed5eed5eed
PROBE_FILE = b'null-probe.txt'

# Opaque handle types, and how a probe gets a real one: the constructor and
# the arguments that differ from the defaults.
MAKERS = {
    'porter_stats_snapshot': ('porter_stats', {}),
    'porter_http_response': ('porter_http_get', {}),
    'porter_http_stream': ('porter_http_stream_open', {}),
    'porter_http_upload': ('porter_http_upload_open', {'method': b'POST'}),
    'porter_db_result': ('porter_db_query', {}),
    'porter_db_cursor': ('porter_db_cursor_open', {}),
    'porter_file_list': ('porter_file_list_dir', {'path': b''}),
    'porter_file_reader': ('porter_file_reader_open', {}),
    'porter_file_writer': ('porter_file_writer_open', {'path': b'null-probe-w.txt', 'flags': 3}),
    'porter_file_watch': ('porter_file_watch_open', {'path': b''}),
    'porter_bytes': ('porter_file_read', {}),
}

# (function, parameter) pairs that porter.h documents as accepting NULL.
ACCEPTS_NULL = {
    ('porter_ping', 'payload'), ('porter_ping_delay', 'payload'),
    ('porter_batch_add_ping', 'payload'),
    ('porter_http_request', 'method'), ('porter_http_request', 'headers'),
    ('porter_http_request', 'body'), ('porter_http_request', 'opts'),
    ('porter_http_stream_open', 'method'), ('porter_http_stream_open', 'headers'),
    ('porter_http_stream_open', 'body'), ('porter_http_stream_open', 'opts'),
    ('porter_http_upload_open', 'method'), ('porter_http_upload_open', 'headers'),
    ('porter_http_upload_open', 'opts'),
    ('porter_http_upload_write', 'data'),
    ('porter_batch_add_http', 'method'), ('porter_batch_add_http', 'headers'),
    ('porter_batch_add_http', 'body'), ('porter_batch_add_http', 'opts'),
    ('porter_http_post_json', 'json'),
    ('porter_http_response_header_at', 'name'), ('porter_http_response_header_at', 'value'),
    ('porter_http_response_hop_header_at', 'name'),
    ('porter_http_response_hop_header_at', 'value'),
    ('porter_http_response_body', 'len'),
    ('porter_file_read', 'root'), ('porter_file_read_into', 'root'),
    ('porter_file_write', 'root'), ('porter_file_write', 'data'),
    ('porter_file_delete', 'root'), ('porter_file_stat', 'root'), ('porter_file_lstat', 'root'),
    ('porter_file_mkdir', 'root'), ('porter_file_rename', 'root'), ('porter_file_copy', 'root'),
    ('porter_file_copy', 'size'), ('porter_file_list_dir', 'root'),
    ('porter_file_list_dir', 'path'),
    ('porter_file_list_entry', 'type'), ('porter_file_list_entry', 'size'),
    ('porter_file_list_entry', 'mtime_ns'),
    ('porter_file_reader_open', 'root'), ('porter_file_writer_open', 'root'),
    ('porter_file_watch_open', 'root'),
    ('porter_file_events_get', 'kind'), ('porter_file_events_get', 'name'),
    ('porter_file_events_get', 'new_name'),
    ('porter_file_writer_write', 'data'),
    ('porter_db_query', 'params'), ('porter_db_cursor_open', 'params'),
    ('porter_batch_add_db_query', 'params'),
    ('porter_batch_add_file_read', 'root'), ('porter_batch_add_file_mkdir', 'root'),
    ('porter_batch_add_file_rename', 'root'), ('porter_batch_add_file_copy', 'root'),
    ('porter_batch_result_file_read', 'file_size'),
}

# What an accessor gives for a NULL object where that is not PORTER_E_INVAL
# (porter.h rule 10: what it gives for an index out of range): an int,
# 'null' (a NULL pointer) or 'text' (a string, never NULL). Accessors
# returning a count or a pointer not listed here need only not crash.
NULL_OBJECT = {
    ('porter_http_response_status', 'r'): 0,
    ('porter_db_ntuples', 'res'): 0,
    ('porter_db_nfields', 'res'): 0,
    ('porter_db_getlength', 'res'): 0,
    ('porter_db_getisnull', 'res'): 0,
    ('porter_file_watch_is_dir', 'w'): 0,
    ('porter_file_events_ended', 'e'): 0,
    ('porter_http_response_body', 'r'): 'text',
    ('porter_http_response_effective_url', 'r'): 'text',
    ('porter_http_response_status_line', 'r'): 'text',
    ('porter_http_response_header', 'r'): 'null',
    ('porter_http_response_hop_status_line', 'r'): 'null',
    ('porter_batch_result_message', 'r'): 'text',
    ('porter_db_message', 'res'): 'text',
    ('porter_db_sqlstate', 'res'): 'text',
    ('porter_db_detail', 'res'): 'text',
    ('porter_db_hint', 'res'): 'text',
    ('porter_db_error_field', 'res'): 'text',
    ('porter_stats_daemon_version', 's'): 'text',
}

# Deviations from the rules that are known and accepted: none. Any
# deviation fails the test.
KNOWN = {}


def prototypes(path=HEADER):
    """{name: (return type, [(type, parameter name)...])} of every
    PORTER_API function in porter.h."""
    text = re.sub(r'/\*.*?\*/', '', open(path).read(), flags=re.S)
    protos = {}
    for ret, name, params in re.findall(r'PORTER_API\s+([^;(]*?)\b(porter_\w+)\s*\(([^)]*)\)\s*;',
                                        text, flags=re.S):
        ps = []
        for p in params.split(','):
            p = ' '.join(p.split())
            if p in ('void', ''):
                continue
            m = re.match(r'(.*?)(\w+)$', p)
            ps.append((squeeze(m.group(1)), m.group(2)))
        protos[name] = (squeeze(ret), ps)
    return protos


def squeeze(t):
    """A C type with no blanks around its stars: 'const char*const*'."""
    return re.sub(r'\s*\*\s*', '*', ' '.join(t.split())).strip()


def ctype_of(t):
    if t.endswith('*'):
        return ctypes.c_char_p if t in ('const char*', 'char*') else ctypes.c_void_p
    return {'int': ctypes.c_int, 'unsigned': ctypes.c_uint, 'size_t': ctypes.c_size_t,
            'uint32_t': ctypes.c_uint32, 'uint64_t': ctypes.c_uint64,
            'int64_t': ctypes.c_int64, 'void': None}[t]


def handle_kind(t):
    base = t.replace('const', '').replace('*', '').strip()
    return base if base in MAKERS or base in ('porter_batch', 'porter_batch_result',
                                              'porter_file_events') else None


def default_int(fn, name):
    if name == 'timeout_ms':
        return 3000
    if name == 'chunk_rows':
        return 10
    if name == 'mode' and fn.startswith('porter_file'):
        return 0o600
    if name == 'body_size':
        return -1
    if name == 'cap':
        return 256
    return 0


def default_str(fn, name):
    return {'method': b'GET', 'url': tc.url('/bin/10'), 'root': b'files', 'path': PROBE_FILE,
            'from': PROBE_FILE, 'to': b'null-probe-copy.txt', 'conninfo': tc.conninfo.encode(),
            'sql': b'SELECT 1', 'json': b'{}', 'name': b'content-type'}.get(name, b'x')


class Prober:
    def __init__(self, lib_path):
        self.lib = ctypes.CDLL(lib_path)
        self.protos = prototypes()
        for name, (ret, ps) in self.protos.items():
            f = getattr(self.lib, name)
            f.restype = ctypes.c_void_p if ret.endswith('*') else ctype_of(ret)
            f.argtypes = [ctype_of(t) for t, _ in ps]

    def make(self, kind, fn=None):
        """A real object of `kind` (in the child) for probing `fn`, or
        None."""
        lib = self.lib
        out = ctypes.c_void_p()
        if fn == 'porter_batch_result_file_read':
            b = lib.porter_batch_new(0)
            lib.porter_batch_add_file_read(b, b'files', PROBE_FILE, 0, 0, 3000)
            rc = lib.porter_batch_run(b, 0, 3000, ctypes.byref(out))
            return out.value if rc == 0 else None
        if fn and fn.startswith('porter_http_response_hop_'):
            # A response with one redirect hop, so hop 0 exists.
            rc = lib.porter_http_get(tc.url('/redirect/1'), 0, 3000, ctypes.byref(out))
            return out.value if rc == 0 else None
        if kind == 'porter_batch':
            return lib.porter_batch_new(0)
        if kind == 'porter_batch_result':
            b = lib.porter_batch_new(0)
            lib.porter_batch_add_ping(b, b'hi', 2, 0, 3000)
            out = ctypes.c_void_p()
            rc = lib.porter_batch_run(b, 0, 3000, ctypes.byref(out))
            return out.value if rc == 0 else None
        if kind == 'porter_file_events':
            w = self.make('porter_file_watch')
            lib.porter_file_write(b'files', b'null-probe-ev.txt', b'e', 1, 0x3, 0o600, 0, 3000)
            out = ctypes.c_void_p()
            rc = lib.porter_file_watch_read(w, 0, 3000, ctypes.byref(out))
            return out.value if rc == 0 else None
        fn, over = MAKERS[kind]
        args, outs = self.args(fn, None, over)
        rc = getattr(lib, fn)(*args)
        return outs['out'].value if rc == 0 else None

    def args(self, fn, null, over=None, nonzero_len=False):
        """The arguments of `fn` with parameter `null` NULL (and, with
        `nonzero_len`, the length that goes with it 1) and the out-parameter
        objects by name."""
        over = over or {}
        ps = self.protos[fn][1]
        args, outs = [], {}
        for k, (t, name) in enumerate(ps):
            if name == null:
                args.append(None)
                continue
            if not t.endswith('*'):
                v = over.get(name, default_int(fn, name))
                if nonzero_len and k > 0 and ps[k - 1][1] == null:
                    v = 1
                args.append(v)
                continue
            kind = handle_kind(t)
            if kind and t.count('*') == 1:
                h = self.make(kind, fn)
                if h is None:
                    raise RuntimeError('no %s for %s' % (kind, fn))
                args.append(h)
            elif t.count('*') == 2 and t != 'const char*const*':
                o = ctypes.c_void_p(SENTINEL)
                outs[name] = o
                args.append(ctypes.addressof(o))
            elif t in ('const char*', 'char*') and name != 'buf':
                args.append(over.get(name, default_str(fn, name)))
            elif t.startswith('const') and name not in ('buf',):
                # Input bytes, headers, params, options: NULL with a zero
                # length unless probed.
                args.append(None)
            else:
                # Integer and struct out-parameters (and porter_socket_path's
                # buffer): 256 bytes filled with 0xab, checked afterwards.
                # A struct that carries its size (rule 9) gets it as its
                # *_INIT macro sets it; the bytes past it are a guard.
                buf = ctypes.create_string_buffer(b'\xab' * 256, 256)
                if sized_type(t):
                    ctypes.c_size_t.from_buffer(buf).value = ctypes.sizeof(sized_type(t))
                outs[name] = buf
                args.append(ctypes.addressof(buf))
        return args, outs

    def probe(self, fn, null, nonzero_len=False):
        """Runs one probe in a forked child; returns ('ok', result dict) or
        ('crash' | 'hang' | 'error', detail)."""
        r, w = os.pipe()
        pid = os.fork()
        if pid == 0:
            os.close(r)
            try:
                signal.alarm(20)
                args, outs = self.args(fn, null, nonzero_len=nonzero_len)
                rc = getattr(self.lib, fn)(*args)
                res = {'rc': rc, 'outs': {}}
                for name, o in outs.items():
                    if isinstance(o, ctypes.c_void_p):
                        res['outs'][name] = o.value or 0
                        continue
                    size = ctypes.sizeof(self.out_type(fn, name))
                    # A sized struct's struct_size is the caller's, never
                    # written; what lies past the struct must stay 0xab.
                    skip = ctypes.sizeof(ctypes.c_size_t) if self.sized(fn, name) else 0
                    res['outs'][name] = o.raw[skip:size].hex()
                    if skip and set(o.raw[size:]) != {0xab}:
                        res['past'] = name
                os.write(w, json.dumps(res).encode())
                os._exit(0)
            except BaseException as e:  # reported, not raised in the child
                os.write(w, json.dumps({'error': repr(e)}).encode())
                os._exit(0)
        os.close(w)
        data = b''
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            ready, _, _ = select.select([r], [], [], 1)
            if ready:
                chunk = os.read(r, 65536)
                if not chunk:
                    break
                data += chunk
        else:
            deadline = 0
        os.close(r)
        if deadline == 0:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            return 'hang', ''
        _, status = os.waitpid(pid, 0)
        if not data:
            return 'crash', 'wait status %#x' % status
        res = json.loads(data)
        if 'error' in res:
            return 'error', res['error']
        return 'ok', res

    def sized(self, fn, name):
        return sized_type(dict((n, ty) for ty, n in self.protos[fn][1])[name])

    def out_type(self, fn, name):
        t = dict((n, ty) for ty, n in self.protos[fn][1])[name]
        base = t.replace('const', '').replace('*', '').strip()
        s = sized_type(t)
        if s is None:
            return {'int': ctypes.c_int, 'size_t': ctypes.c_size_t, 'uint64_t': ctypes.c_uint64,
                    'int64_t': ctypes.c_int64, 'char': ctypes.c_char * 256,
                    'void': ctypes.c_char * 256}[base]  # a caller's buffer (read_into)
        return ctypes.c_char * s if isinstance(s, int) else s


def sized_type(t):
    """The ctypes class of a caller-allocated struct that carries its size
    (porter.h rule 9) named by C type `t`, or None."""
    base = t.replace('const', '').replace('*', '').strip()
    return {'porter_worker_stats': tc.WorkerStats, 'porter_uid_usage': UidUsage,
            'porter_file_info': tc.FileInfo, 'porter_http_timings': tc.HttpTimings}.get(base)


def judge(p, fn, null, res, nonzero_len):
    """None when the probe's result is what porter.h says, else why not."""
    ret, ps = p.protos[fn]
    rc = res['rc']
    if 'past' in res:
        return 'wrote past the struct_size of out-parameter %s' % res['past']
    accepted = (fn, null) in ACCEPTS_NULL and not nonzero_len
    is_object = handle_kind(dict((n, t) for t, n in ps)[null]) is not None \
        and ps[0][1] == null
    if is_object and fn.endswith('_close'):
        # Rule 8: every close accepts NULL and ignores it.
        return None if rc == 0 else 'close(NULL) gives %d, not 0' % rc
    if accepted:
        if ret == 'int' and rc == tc.PORTER_E_INVAL:
            return 'NULL is documented as accepted, got PORTER_E_INVAL'
        return None
    if (fn, null) in NULL_OBJECT:
        want = NULL_OBJECT[(fn, null)]
        if want == 'any' or (want == 'null' and not rc) or (want == 'text' and rc) \
                or want == rc:
            return None
        return 'a NULL object gives %r, porter.h says %r' % (rc, want)
    if ret == 'void' or (is_object and ret != 'int'):
        return None  # frees accept NULL; accessors are listed above
    if ret != 'int':
        return None
    if rc != tc.PORTER_E_INVAL:
        return 'NULL gives %d, not PORTER_E_INVAL' % rc
    for name, v in res['outs'].items():
        if isinstance(v, int) and v != 0:
            return 'out-parameter %s is %#x after the failure, not NULL' % (name, v)
        if isinstance(v, str) and name != 'buf' and set(v) - {'0'}:
            return 'out-parameter %s is not zeroed after the failure (%s)' % (name, v[:32])
    return None


def run(lib_path, write_probe_file):
    """Probes every pointer parameter of every public function; returns
    (number of probes, [failure lines])."""
    p = Prober(lib_path)
    failures, n = [], 0
    for fn in sorted(p.protos):
        ret, ps = p.protos[fn]
        for k, (t, name) in enumerate(ps):
            if not t.endswith('*'):
                continue
            variants = [False]
            # Bytes, headers, params or text given with their length.
            if k + 1 < len(ps) and ps[k + 1][0] == 'size_t' and t in (
                    'const void*', 'const char*const*', 'const porter_db_param*', 'const char*'):
                variants.append(True)
            for nonzero_len in variants:
                write_probe_file()
                n += 1
                kind, res = p.probe(fn, name, nonzero_len)
                what = '%s(%s = NULL%s)' % (fn, name, ', its length 1' if nonzero_len else '')
                if kind != 'ok' and KNOWN.get(what) != kind:
                    failures.append('%s: %s %s' % (what, kind, res))
                    continue
                if kind != 'ok':
                    continue
                why = judge(p, fn, name, res, nonzero_len)
                if KNOWN.get(what) != why:
                    failures.append('%s: %s' % (what, why or 'fixed: take it off KNOWN'))
    return n, failures


def test_null_arguments():
    lib = tc.c.lib

    def write_probe_file():
        rc = lib.porter_file_write(b'files', PROBE_FILE, b'probe', 5, 0x3, 0o600, 0, 5000)
        check(rc == 0, 'the probe file is written (%d)' % rc)

    n, failures = run(lib._name, write_probe_file)
    check(n > 100, 'every pointer parameter probed (%d probes)' % n)
    check(not failures, '%d of %d NULL probes broke porter.h:\n  %s'
          % (len(failures), n, '\n  '.join(failures)))


def shape_breaches(path=HEADER):
    """What in porter.h's declarations breaks rules 1, 2, 4, 5, 8 and 9,
    read from the text: one line each."""
    protos = prototypes(path)
    out = []
    for fn, (ret, ps) in sorted(protos.items()):
        names = [n for _, n in ps]
        if 'timeout_ms' in names:
            k = names.index('timeout_ms')
            # Rule 1: after timeout_ms only out-parameters.
            for t, n in ps[k + 1:]:
                if not t.endswith('*') or (t.startswith('const') and not t.endswith('**')):
                    out.append('%s: %s %s after timeout_ms is not an out-parameter' % (fn, t, n))
            if 'call_id' in names and names.index('call_id') != k - 1:
                out.append('%s: call_id does not come right before timeout_ms' % fn)
        elif 'call_id' in names:
            out.append('%s: sends a request (call_id) but takes no timeout_ms' % fn)
        for t, n in ps:
            # Rule 5: bytes in are const void *, chunks out const void **.
            if 'uint8_t' in t or (t in ('const char*', 'const char**')
                                  and n in ('data', 'body', 'payload')):
                out.append('%s: bytes %s as %s' % (fn, n, t))
    for fn in protos:
        # Rules 4 and 8: a handle with open has read or write (a stream;
        # a db session is not one), close, free.
        if fn.endswith('_open'):
            h = fn[:-len('_open')]
            if fn != 'porter_db_open' and h + '_read' not in protos \
                    and h + '_write' not in protos:
                out.append('%s: a stream with neither _read nor _write' % h)
            for verb in ('_close', '_free'):
                if h + verb not in protos:
                    out.append('%s: no %s' % (h, verb))
        if fn.endswith('_close'):
            t, n = protos[fn][1][-1]
            if n != 'timeout_ms':
                out.append('%s: a close without a timeout' % fn)
    # Rule 9: structs with an *_INIT macro start with their size, and every
    # struct the caller allocates and the library writes into (a struct
    # pointer given to anything but a free) has such a macro.
    text = open(path).read()
    inits = re.findall(r'#define (PORTER_\w+)_INIT\b', text)
    for name in inits:
        m = re.search(r'typedef struct %s \{\s*size_t struct_size;' % name.lower(), text)
        if not m:
            out.append('%s: a sized struct whose first field is not size_t struct_size'
                       % name.lower())
    structs = set(re.findall(r'typedef struct (porter_\w+) \{', text))
    # Rule 5 in structs too: bytes are void pointers.
    for name, body in re.findall(r'typedef struct (porter_\w+) \{(.*?)\}', text, flags=re.S):
        if re.search(r'\buint8_t\s*\*', re.sub(r'/\*.*?\*/', '', body, flags=re.S)):
            out.append('%s: bytes as uint8_t * in a field' % name)
    for fn, (ret, ps) in sorted(protos.items()):
        for t, n in ps:
            if t.rstrip('*') in structs and t.count('*') == 1 and not t.startswith('const') \
                    and not fn.endswith('_free') and t[:-1].upper() not in inits:
                out.append('%s: out struct %s %s has no %s_INIT (struct_size)'
                           % (fn, t[:-1], n, t[:-1].upper()))
    return out


def test_api_shape():
    breaches = shape_breaches()
    check(not breaches, 'porter.h breaks its API rules:\n  ' + '\n  '.join(breaches))
    # The check itself catches each kind of breach.
    bad = open(HEADER).read()
    for before, after in (
            ('int timeout_ms, porter_http_response **out);',
             'porter_http_response **out, int timeout_ms);'),
            ('const void *payload, size_t len, uint64_t call_id',
             'const uint8_t *payload, size_t len, uint64_t call_id'),
            ('PORTER_API void porter_http_stream_free(porter_http_stream *s);', ''),
            ('PORTER_API void porter_db_free(uint64_t session);', ''),
            ('size_t struct_size;           /* sizeof(porter_http_options)', 'int x; /*'),
            ('#define PORTER_FILE_INFO_INIT', '#define PORTER_FILE_INFO_ZERO'),
            ('\tconst void *data;\n\tsize_t len;\n} porter_bytes;',
             '\tuint8_t *data;\n\tsize_t len;\n} porter_bytes;')):
        broken = bad.replace(before, after, 1)
        check(broken != bad, 'the self-check finds %r in porter.h' % before)
        tmp = os.path.join(os.environ.get('TMPDIR', '/tmp'), 'porter-shape-%d.h' % os.getpid())
        with open(tmp, 'w') as f:
            f.write(broken)
        try:
            check(shape_breaches(tmp), 'a header with %r is caught' % after)
        finally:
            os.unlink(tmp)
