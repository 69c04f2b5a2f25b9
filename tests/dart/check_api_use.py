#!/usr/bin/env python3
"""Checks that the Dart package calls only bindings that exist, with as
many arguments as they take.

No Dart SDK runs here, so nothing else would notice a Dart file still
calling a libporter function that porter.h renamed or re-shaped (the
bindings are regenerated from porter.h and checked against it by
dart/tool/check_bindings.py; this checks the other side: their callers).

Every `porter_*(` call and every `addresses.porter_*` reference in the
package's Dart files (lib/, test/, example/, bindings.g.dart excepted) is
looked up among the methods of PorterBindings, and a call's argument count
is compared with the method's parameter count; every `PORTER_*` constant
and `porter_error.PORTER_*` (enum class) member named in code must exist
in the bindings too, every struct field set in a cascade
(`..snake_case = `) must exist, and code that allocates a struct carrying
`struct_size` must set it to its sizeOf; every error code must have its
exception class in PorterException.fromCode. A pointer the code allocated
(`final len = calloc<Size>()`) and passes as is must be of the type the
binding takes (Pointer<Size> for a size_t *, not Pointer<Uint64>). The
address of a PorterBuffer's memory (`buffer.pointer.address`) may reach a
pool worker only through `_enqueue(..., keepAlive: buffer)` (lent_memory).

Usage: check_api_use.py DART_PACKAGE_DIR
       check_api_use.py --selftest DART_PACKAGE_DIR
Exit status 0 when every use matches.
"""
import os
import re
import sys

METHOD = re.compile(r'^  [\w<>., ?]+ (porter_\w+)\(\s*$|^  [\w<>., ?]+ (porter_\w+)\(([^)]*)\) \{',
                    re.M)
ADDRESS = re.compile(r'late final ffi\.Pointer<[^;]*?> (porter_\w+) =', re.S)


def bindings(text):
    """{name: parameter count} of PorterBindings' methods, and the names
    whose address is exported (PorterBindings.addresses)."""
    methods = {}
    for m in re.finditer(r'^  [\w<>.,? ]+? (porter_\w+)\(', text, re.M):
        name = m.group(1)
        i = m.end()
        depth, params, cur = 1, 0, ''
        while depth:
            c = text[i]
            if c in '(<':
                depth += 1
            elif c in ')>':
                depth -= 1
            if depth == 1 and c == ',':
                params += 1 if cur.strip() else 0
                cur = ''
            elif depth >= 1 and c not in '()':
                cur += c
            i += 1
        if cur.strip():
            params += 1
        # Only the public wrapper (a body follows), not the lookups.
        if text[i:i + 3] == ' {\n' or text[i:i + 2] == ' {':
            methods.setdefault(name, params)
    addresses = set(re.findall(r'get (porter_\w+) =>', text))
    return methods, addresses


def constants(text):
    """Names of the bindings' constants: `PORTER_*` top-level ones and
    `enum.MEMBER` for the int-valued enum classes."""
    names = set(re.findall(r'^const \w+ (PORTER_\w+) =', text, re.M))
    for m in re.finditer(r'^(?:sealed |abstract )?class (porter_\w+) \{(.*?)^\}', text,
                         re.M | re.S):
        for c in re.findall(r'static const (?:int )?(PORTER_\w+) =', m.group(2)):
            names.add('%s.%s' % (m.group(1), c))
    return names


def structs(text):
    """{struct name: set of field names} of the bindings' porter_* structs."""
    out = {}
    for m in re.finditer(r'^final class (porter_\w+) extends ffi\.Struct \{(.*?)^\}', text,
                         re.M | re.S):
        out[m.group(1)] = set(re.findall(r'external [\w<>.]+ (\w+);', m.group(2)))
    return out


def param_types(text):
    """{name: [parameter type]} of PorterBindings' public wrappers, types
    without the `ffi.` prefix (Pointer<Size>, int)."""
    out = {}
    for m in re.finditer(r'^  [\w<>., ?]+? (porter_\w+)\(([^)]*)\) \{', text, re.M):
        types = [' '.join(a.split()[:-1]).replace('ffi.', '')
                 for a in m.group(2).split(',') if a.strip()]
        out.setdefault(m.group(1), types)
    return out


# `final NAME = ... calloc<T>(` (or malloc): the native out-parameters and
# buffers Dart code hands to libporter.
ALLOC = re.compile(r'\bfinal (\w+) =[^;]*?\b(?:calloc|malloc)<((?:[^<>]|<[^<>]*(?:<[^<>]*>)?[^<>]*>)+)>\(')


def pointer_args(code, params):
    """Errors for porter_* calls passing a pointer this code allocated
    (the nearest `final NAME = calloc<T>(` above the call) where the
    binding takes another pointer type: a size_t out-parameter given a
    Pointer<Uint64>, an int one a Pointer<Int64>. A compiler would refuse
    these; nothing else here would notice."""
    allocs = [(m.start(), m.group(1), 'Pointer<%s>' % m.group(2)) for m in ALLOC.finditer(code)]
    errors = []
    for name, args, line, pos in calls(code, with_args=True):
        types = params.get(name)
        if not types or len(types) != len(args):
            continue
        for i, (arg, want) in enumerate(zip(args, types)):
            if not re.fullmatch(r'\w+', arg) or not want.startswith('Pointer<'):
                continue
            known = [t for at, n, t in allocs if n == arg and at < pos]
            if known and known[-1] != want:
                errors.append((line, '%s argument %d (%s) is a %s, the binding takes %s'
                               % (name, i + 1, arg, known[-1], want)))
    return errors


def calls(text, with_args=False):
    """(name, argument count, line) of each porter_*( call in Dart code;
    with_args: (name, [argument text], line, offset) instead."""
    out = []
    for m in re.finditer(r'(?<![\w$])(?:\.)?(porter_\w+)\(', text):
        name = m.group(1)
        i = m.end()
        depth, args, cur, quote, texts = 1, 0, '', None, []
        while depth and i < len(text):
            c = text[i]
            if quote:
                if c == '\\':
                    i += 2
                    continue
                if c == quote:
                    quote = None
            elif c in '\'"':
                quote = c
            elif c in '([{':
                depth += 1
            elif c in ')]}':
                depth -= 1
            if depth == 1 and c == ',' and not quote:
                args += 1 if cur.strip() else 0
                texts.append(cur.strip())
                cur = ''
            elif depth >= 1:
                cur += c
            i += 1
        if cur.strip(' \n\t)'):
            args += 1
            texts.append(cur.strip(' \n\t)'))
        line = text.count('\n', 0, m.start()) + 1
        out.append((name, [t for t in texts if t], line, m.start()) if with_args
                   else (name, args, line))
    return out


def check(pkg, sources=None):
    with open(os.path.join(pkg, 'lib', 'src', 'bindings.g.dart')) as f:
        btext = f.read()
    methods, addresses = bindings(btext)
    params = param_types(btext)
    consts = constants(btext)
    fields = structs(btext)
    all_fields = set().union(*fields.values()) if fields else set()
    if not methods:
        return ['no PorterBindings methods found in bindings.g.dart']
    errors = []
    files = sources
    if files is None:
        files = {}
        for sub in ('lib', 'test', 'example'):
            for root, _, names in os.walk(os.path.join(pkg, sub)):
                for n in names:
                    if n.endswith('.dart') and n != 'bindings.g.dart':
                        p = os.path.join(root, n)
                        with open(p) as f:
                            files[os.path.relpath(p, pkg)] = f.read()
    used = 0
    for path, text in sorted(files.items()):
        # Comments may name functions freely.
        code = re.sub(r'//[^\n]*', '', text)
        for name, args, line in calls(code):
            used += 1
            if name not in methods:
                errors.append('%s:%d: %s is not a binding' % (path, line, name))
            elif args != methods[name]:
                errors.append('%s:%d: %s takes %d arguments, called with %d'
                              % (path, line, name, methods[name], args))
        for line, what in pointer_args(code, params):
            errors.append('%s:%d: %s' % (path, line, what))
        # Strings and doc text may name constants freely; code may not
        # name one that does not exist.
        plain = re.sub(r"'(?:[^'\\\n]|\\.)*'", "''", code)
        for m in re.finditer(r'\b((?:porter_\w+\.)?PORTER_\w+)\b', plain):
            name = m.group(1)
            if name not in consts:
                errors.append('%s:%d: no constant %s in the bindings' % (
                    path, plain.count('\n', 0, m.start()) + 1, name))
        # A struct that carries its size must have it set wherever this
        # code allocates one (libporter refuses it otherwise).
        for name, fs in fields.items():
            if 'struct_size' in fs and re.search(r'calloc<%s>' % name, code) \
                    and not re.search(r'struct_size\s*=\s*sizeOf<%s>' % name, code):
                errors.append('%s: allocates %s without setting struct_size' % (path, name))
        # Fields set in a cascade on a struct (`..field = `) must exist.
        for m in re.finditer(r'\.\.([a-z_]\w*)\s*=[^=]', code):
            if '_' in m.group(1) and m.group(1) not in all_fields:
                errors.append('%s:%d: no struct field %s in the bindings' % (
                    path, code.count('\n', 0, m.start()) + 1, m.group(1)))
        # Text for libporter goes through nativeText (native.dart), which
        # refuses a NUL that C would cut the text at and allocates with
        # calloc, as the frees expect.
        if path.startswith('lib/') and not path.endswith('native.dart'):
            for m in re.finditer(r'\.toNativeUtf8\(', code):
                errors.append('%s:%d: toNativeUtf8() outside native.dart: use nativeText '
                              '(a NUL in the text would cut it in C)' % (
                                  path, code.count('\n', 0, m.start()) + 1))
        if path.startswith('lib/'):
            errors += ['%s:%d: %s' % (path, line, what) for line, what in lent_memory(code)]
        # A uint64_t from libporter (a session id, a call id) is a Dart int
        # with the same 64 bits, negative when the top one is set; a Dart
        # int has no more bits, so toUnsigned(64) gives the same negative
        # number back (DbSession would print 0x-... for such an id).
        for m in re.finditer(r'\.toUnsigned\(\s*64\s*\)', code):
            errors.append('%s:%d: toUnsigned(64) leaves a negative int negative: '
                          'use hex64 (db.dart) for a uint64 in hex' % (
                              path, code.count('\n', 0, m.start()) + 1))
        for m in re.finditer(r'addresses\.(porter_\w+)', code):
            if m.group(1) not in addresses:
                errors.append('%s:%d: no exported address of %s' % (
                    path, code.count('\n', 0, m.start()) + 1, m.group(1)))
    if not used:
        errors.append('no porter_* call found: the scan is broken')
    if sources is None:
        errors += unmapped_codes(pkg, btext)
    return errors


def enclosing_call(code, pos, names):
    """The text of the innermost call of one of [names] (`_enqueue(`,
    `_submit(`) whose parentheses hold offset [pos], or None."""
    best = None
    for m in re.finditer(r'\b(%s)\(' % '|'.join(names), code[:pos]):
        depth, i = 1, m.end()
        while depth and i < len(code):
            depth += {'(': 1, ')': -1}.get(code[i], 0)
            i += 1
        if m.end() <= pos < i:
            best = code[m.start():i]
    return best


def lent_memory(code):
    """A pool worker writes into the caller's native memory by its address
    (`buffer.pointer.address`, a PorterBuffer's): the memory is freed once
    the Dart object owning it is collected, and only the pool knows how
    long a worker may still write into it (after a cancel too). So the
    address may only be handed over in a pool call (`_enqueue`) that also
    gives the job that object to hold (`keepAlive: buffer`), never on its
    own, where a collected buffer would leave the worker writing into
    freed memory. Returns (line, what) errors."""
    errors = []
    for m in re.finditer(r'\b(\w+)\.pointer\.address\b', code):
        line = code.count('\n', 0, m.start()) + 1
        call = enclosing_call(code, m.start(), ('_enqueue', '_submit'))
        if call is None:
            errors.append((line, 'the address of %s\'s memory leaves it outside a pool '
                                 'call (a worker would write into it unowned)' % m.group(1)))
        elif not re.search(r'\bkeepAlive:\s*%s\b' % re.escape(m.group(1)), call) \
                or call.startswith('_submit('):
            errors.append((line, 'the address of %s\'s memory goes to a worker without '
                                 '_enqueue(..., keepAlive: %s): it could be freed while the '
                                 'worker writes into it' % (m.group(1), m.group(1))))
    return errors


def unmapped_codes(pkg, btext, sources=None):
    """Every error code of the bindings must have its exception class:
    named in PorterException.fromCode (errors.dart) or in fileErrorKind
    (files.dart). A code added to porter.h and left out would reach Dart
    callers as a plain PorterException they can only tell by its text."""
    m = re.search(r'sealed class porter_error \{(.*?)\n\}', btext, re.S)
    codes = re.findall(r'static const (PORTER_E_\w+) =', m.group(1)) if m else []
    if not codes:
        return ['no error codes found in the bindings']
    if sources is None:
        src = os.path.join(pkg, 'lib', 'src')
        with open(os.path.join(src, 'errors.dart')) as f:
            errors_dart = f.read()
        with open(os.path.join(src, 'files.dart')) as f:
            files_dart = f.read()
    else:
        errors_dart = sources.get('errors.dart', '')
        files_dart = sources.get('files.dart', '')
    body = re.search(r'factory PorterException\.fromCode\(.*?\n  \}', errors_dart, re.S)
    kinds = re.search(r'fileErrorKind\(int code\) => switch \(code\) \{.*?\};', files_dart, re.S)
    mapped = set(re.findall(r'porter_error\.(PORTER_E_\w+)',
                            (body.group(0) if body else '') + (kinds.group(0) if kinds else '')))
    return ['error code %s has no exception class in PorterException.fromCode' % c
            for c in codes if c not in mapped]


def selftest(pkg):
    """The check must catch a renamed function, a wrong argument count and
    a missing address, and pass the real sources."""
    if check(pkg):
        print('selftest: the real sources do not pass')
        return 1
    cases = {
        'renamed': "void f(b) { b.porter_pingx(nullptr, 0, 1); }",
        'arity': "void f(b) { b.porter_ping(nullptr, 0); }",
        'address': "final x = b.addresses.porter_no_such_free;",
        'constant': "final x = porter_error.PORTER_E_NO_SUCH;",
        'struct_size': "final o = calloc<porter_http_options>(); o.ref..chunk_size = 1;",
        'field': "final o = x; o.ref..chunk_sizes = 1;",
        'pointer': "final len = calloc<Uint64>(); b.porter_http_response_body(r, len);",
        'struct pointer': "final out = calloc<Pointer<porter_db_result>>(); "
                          "b.porter_db_cursor_open(0, ci, s, p, 0, 1, 0, 0, 0, out);",
    }
    # A source with no porter_* call at all is refused for that alone,
    # which must not pass for catching the planted mistake.
    nocall = 'no porter_* call found: the scan is broken'
    for what, src in cases.items():
        if not [e for e in check(pkg, {'x.dart': src}) if e != nocall]:
            print('selftest: a %s use was not caught' % what)
            return 1
    native = "void f(b, String path) { final p = path.toNativeUtf8(); b.porter_call_id_new(); }"
    if not check(pkg, {'lib/src/x.dart': native}):
        print('selftest: toNativeUtf8 in lib/ was not caught')
        return 1
    if check(pkg, {'test/x.dart': native}):
        print('selftest: toNativeUtf8 in a test was refused')
        return 1
    # The pool's read into a PorterBuffer, with the job holding the buffer
    # and without: the latter must be caught, in a test it is no concern.
    lend = ("Future<int> f(PorterBuffer buffer) async { b.porter_call_id_new(); "
            "final job = _enqueue(_Op.fileReadInto, t, c, args: _FileArgs('p', null, "
            "into: buffer.pointer.address)%s); return 0; }")
    if check(pkg, {'lib/src/x.dart': lend % ', keepAlive: buffer'}):
        print('selftest: a read into a buffer the job holds was refused')
        return 1
    for what, src in (('without keepAlive', lend % ''),
                      ('holding another object', lend % ', keepAlive: other'),
                      ('outside a pool call',
                       "void f(PorterBuffer buffer) { b.porter_call_id_new(); "
                       "final a = buffer.pointer.address; }")):
        if not check(pkg, {'lib/src/x.dart': src}):
            print('selftest: a buffer address sent %s was not caught' % what)
            return 1
    if not check(pkg, {'lib/src/x.dart': "String f(b, int id) { b.porter_call_id_new(); "
                                         "return id.toUnsigned(64).toRadixString(16); }"}):
        print('selftest: toUnsigned(64) on a uint64 was not caught')
        return 1
    if check(pkg, {'x.dart': "void f(b) { b.porter_ping(p.cast(), f(a, b), 0, 5); }"}):
        print('selftest: a correct call with nested arguments was refused')
        return 1
    if check(pkg, {'x.dart': "final len = calloc<Size>(); b.porter_http_response_body(r, len);"
                             "final out = calloc<Pointer<porter_db_cursor>>(); "
                             "b.porter_db_cursor_open(0, ci, s, p, 0, 1, 0, 0, 0, out);"}):
        print('selftest: correctly typed out-parameters were refused')
        return 1
    with open(os.path.join(pkg, 'lib', 'src', 'errors.dart')) as f:
        errors_dart = f.read()
    with open(os.path.join(pkg, 'lib', 'src', 'files.dart')) as f:
        files_dart = f.read()
    with open(os.path.join(pkg, 'lib', 'src', 'bindings.g.dart')) as f:
        btext = f.read()
    if unmapped_codes(pkg, btext, {'errors.dart': errors_dart, 'files.dart': files_dart}):
        print('selftest: the real error mapping is refused')
        return 1
    dropped = errors_dart.replace('case porter_error.PORTER_E_BUSY:', '', 1)
    if not unmapped_codes(pkg, btext, {'errors.dart': dropped, 'files.dart': files_dart}):
        print('selftest: a code left out of fromCode was not caught')
        return 1
    print('selftest: every breakage caught')
    return 0


def main(argv):
    if len(argv) == 3 and argv[1] == '--selftest':
        return selftest(argv[2])
    if len(argv) != 2:
        print(__doc__)
        return 2
    errors = check(argv[1])
    for e in errors:
        print(e)
    if errors:
        return 1
    print('check_api_use: every porter_* use matches the bindings')
    return 0


if __name__ == '__main__':
    sys.exit(main(sys.argv))
