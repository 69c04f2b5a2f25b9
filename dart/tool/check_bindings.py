#!/usr/bin/env python3
"""Checks that every function, struct, error code and version macro bound in
lib/src/bindings.g.dart matches porter.h (names, numbers and native types),
so the committed bindings cannot drift from the header. Every function,
struct, error code and enum of the header must be bound: one added to the
header without regenerating the bindings fails the check too. The doc
comments of the types, struct fields and enum members must say what the
header says (gen_bindings.py rewrites them), as must the functions', and no
call may be a leaf call.

Usage: check_bindings.py [-I DIR]... HEADER BINDINGS   (exit 0 when they agree)
       check_bindings.py [-I DIR]... --selftest HEADER BINDINGS
         (exit 0 when deliberately broken copies of BINDINGS are all caught)
"""
import os
import re
import sys

C_TO_FFI = {
    'int': 'ffi.Int', 'void': 'ffi.Void', 'size_t': 'ffi.Size',
    'uint32_t': 'ffi.Uint32', 'uint64_t': 'ffi.Uint64',
    'int64_t': 'ffi.Int64', 'int32_t': 'ffi.Int32', 'char': 'ffi.Char',
    'uint8_t': 'ffi.Uint8', 'unsigned': 'ffi.UnsignedInt',
}


def struct_fields(body):
    """(ffi type, name) of every field of a C struct body; handles
    pointers and several declarators in one declaration (`uint32_t a, b;`)."""
    body = re.sub(r'/\*.*?\*/', '', body, flags=re.S)
    out = []
    for decl in body.split(';'):
        decl = ' '.join(decl.split())
        if not decl:
            continue
        m = re.match(r'((?:const\s+)?\w+)\s*(.*)$', decl)
        base, rest = m.group(1), m.group(2)
        for d in rest.split(','):
            d = d.strip()
            stars = d.count('*')
            out.append((ffi_type(base + ' ' + '*' * stars), d.replace('*', '').strip()))
    return out


def dart_fields(body):
    """(ffi type, name) of every field of a Dart ffi.Struct body."""
    out = []
    for ann, ptr, name in re.findall(
            r'(?:@(ffi\.\w+)\(\)\s*external int|external (ffi\.Pointer<.*?>)) (\w+);', body):
        out.append((ann or ptr, name))
    return out


def ffi_type(c):
    c = c.replace('const ', '').strip()
    stars = c.count('*')
    base = c.replace('*', '').strip()
    t = C_TO_FFI.get(base, base)
    for _ in range(stars):
        t = 'ffi.Pointer<%s>' % t
    return t


def dart_type(c, native=False):
    """The Dart type of C type `c`: its ffi type for a NativeFunction
    (native), else the type asFunction and the wrapper use (int for every
    integer, void, the same Pointer<...> for pointers)."""
    t = ffi_type(c)
    if native or t.startswith('ffi.Pointer<'):
        return t
    return 'void' if t == 'ffi.Void' else 'int'


def split_params_named(p):
    """(C type, name) of every parameter of a C parameter list."""
    p = ' '.join(p.split())
    if p in ('', 'void'):
        return []
    out = []
    for arg in p.split(','):
        m = re.match(r'(.*?)(\w+)$', arg.strip())
        out.append((m.group(1).strip(), m.group(2)))
    return out


DECL = re.compile(r'PORTER_API\s+([\w\s\*]+?)\s*\b(porter_\w+)\s*\(([^;]*?)\)\s*;', re.S)


def header_functions(header):
    """(name, return type, parameter text, doc comment or None) of every
    function of the header, in order; the comment is the one right above
    the declaration, as ffigen takes it."""
    out = []
    for m in DECL.finditer(header):
        prefix = header[:m.start()].rstrip()
        comment = None
        if prefix.endswith('*/'):
            comment = prefix[prefix.rfind('/*'):]
        out.append((m.group(2), m.group(1).strip(), m.group(3), comment))
    return out


def split_params(p):
    p = p.strip()
    if p in ('', 'void'):
        return []
    out = []
    for arg in p.split(','):
        arg = arg.strip()
        m = re.match(r'(.*?)(\w+)$', arg)
        out.append(ffi_type(m.group(1)))
    return out


def compare(header, dart):
    """Returns (errors, notes, number of bound functions)."""
    errors = []
    notes = []

    funcs = {name: (ret, params) for name, ret, params, _ in header_functions(header)}
    if not funcs:
        errors.append('no functions found in the header')
    bound = re.findall(r"_lookup<\s*ffi\.NativeFunction<(.*?)>>\(\s*'(\w+)'", dart, re.S)
    if not bound:
        errors.append('no function lookups found in the bindings')
    for sig, name in bound:
        if name not in funcs:
            errors.append('function %s is bound but not declared in the header' % name)
            continue
        ret, params = funcs[name]
        want = '%s Function(%s)' % (ffi_type(ret), ','.join(split_params(' '.join(params.split()))))
        if re.sub(r'\s+', '', sig).rstrip(',') != re.sub(r'\s+', '', want):
            errors.append('function %s: bound as %s, header says %s' % (name, sig, want))
    names = {name for _, name in bound}
    for name in sorted(set(funcs) - names):
        errors.append('function %s of the header is not bound' % name)

    # What Dart code calls: the asFunction type and the wrapper method.
    for name in sorted(names & set(funcs)):
        ret, params = funcs[name]
        ps = split_params_named(params)
        want = '%s Function(%s)' % (dart_type(ret), ','.join(dart_type(t) for t, _ in ps))
        m = re.search(r'_%sPtr\.asFunction<(.*?)>\(\);' % name, dart, re.S)
        if not m:
            errors.append('function %s: no asFunction' % name)
        elif re.sub(r'\s+', '', m.group(1)).rstrip(',') != re.sub(r'\s+', '', want):
            errors.append('function %s: asFunction<%s>, header says %s' % (name, m.group(1), want))
        m = re.search(r'\n  ([\w<>.]+) %s\(([^)]*)\) \{\n\s*return _%s\(([^)]*)\);' % (name, name),
                      dart)
        if not m:
            errors.append('function %s: no wrapper method' % name)
            continue
        got_params = [a.strip().rsplit(' ', 1) for a in m.group(2).split(',') if a.strip()]
        want_params = [[dart_type(t), n] for t, n in ps]
        if m.group(1) != dart_type(ret) or got_params != want_params:
            errors.append('function %s: wrapper %s(%s), header says %s(%s)'
                          % (name, m.group(1), m.group(2).strip(), dart_type(ret),
                             ', '.join('%s %s' % tuple(p) for p in want_params)))
        passed = [a.strip() for a in m.group(3).split(',') if a.strip()]
        if passed != [n for _, n in ps]:
            errors.append('function %s: wrapper passes %s' % (name, passed))

    # Every free function has its address, for NativeFinalizer.
    for name, (ret, params) in sorted(funcs.items()):
        ps = split_params_named(params)
        if not (name.endswith('_free') and ffi_type(ret) == 'ffi.Void' and len(ps) == 1):
            continue
        sig = 'ffi.Void Function(%s)' % ffi_type(ps[0][0])
        pat = (r'ffi\.Pointer<ffi\.NativeFunction<%s>>\s*get %s => _library\._%sPtr;'
               % (re.escape(sig), name, name))
        if not re.search(pat, dart):
            errors.append('free function %s has no symbol address of type %s' % (name, sig))

    codes = dict(re.findall(r'X\((PORTER_E_\w+),\s*(-?\d+),', header))
    for name, value in re.findall(r'static const (PORTER_E_\w+) = (-?\d+);', dart):
        if codes.get(name) != value:
            errors.append('error code %s = %s differs from the header (%s)' % (name, value, codes.get(name)))
    for name in sorted(set(codes) - set(re.findall(r'static const (PORTER_E_\w+) =', dart))):
        errors.append('error code %s of the header is not bound' % name)

    # Plain C enums (flags, kinds): every constant with the header's value.
    for ename, body in re.findall(r'enum (porter_\w+) \{(.*?)\};', header, re.S):
        if ename == 'porter_error':
            continue
        consts = re.findall(r'(PORTER_\w+)\s*=\s*(-?\d+)', re.sub(r'/\*.*?\*/', '', body, flags=re.S))
        m = re.search(r'sealed class %s \{(.*?)\n\}' % ename, dart, re.S)
        if not m:
            errors.append('enum %s of the header is not bound' % ename)
            continue
        got = re.findall(r'static const (PORTER_\w+) = (-?\d+);', m.group(1))
        if got != consts:
            errors.append('enum %s: %s differs from the header %s' % (ename, got, consts))

    # Every object-like macro whose value is a number or a string literal
    # (versions, batch modes, file flags), whatever its spelling (0x100u
    # in C is 256 in Dart).
    for name, value in re.findall(
            r'^#define[ \t]+(PORTER_\w+)[ \t]+("[^"\n]*"|(?:0[xX][0-9a-fA-F]+|\d+)[uUlL]*)[ \t]*$',
            header, re.M):
        if value.startswith('"'):
            ok = "const String %s = '%s';" % (name, value.strip('"')) in dart
        else:
            m = re.search(r'const int %s = (0[xX][0-9a-fA-F]+|-?\d+);' % name, dart)
            ok = m is not None and int(m.group(1), 0) == int(value.rstrip('uUlL'), 0)
        if not ok:
            errors.append('macro %s = %s missing or different' % (name, value))

    for sname, body in re.findall(r'typedef struct (porter_\w+)\s*\{(.*?)\}', header, re.S):
        m = re.search(r'final class %s extends ffi\.Struct \{(.*?)\n\}' % sname, dart, re.S)
        if not m:
            errors.append('struct %s of the header is not bound' % sname)
            continue
        fields = struct_fields(body)
        got = dart_fields(m.group(1))
        if got != fields:
            errors.append('struct %s: fields %s differ from the header %s' % (sname, got, fields))
    for sname in re.findall(r'typedef struct (porter_\w+) porter_\w+;', header):
        if 'final class %s extends ffi.Opaque {}' % sname not in dart:
            errors.append('opaque struct %s of the header is not bound' % sname)

    errors += compare_docs(header, dart)

    # A blocking call marked as a leaf call keeps the GC from running for
    # as long as it blocks (every porter_* call may wait on the daemon).
    if 'isLeaf' in dart:
        errors.append('a lookup is marked isLeaf: no porter_* call may be a leaf call')

    return errors, notes, len(bound)


def c_comment_text(comment):
    """A C comment's words, as one line (what ffigen's doc comment says)."""
    body = re.sub(r'^/\*+', '', comment.strip())
    body = re.sub(r'\*/$', '', body)
    return ' '.join(' '.join(re.sub(r'^\s*\*? ?', '', l) for l in body.split('\n')).split())


def dart_doc_text(block):
    """The words of a block of `///` lines, as one line."""
    return ' '.join(' '.join(re.sub(r'^\s*/// ?', '', l) for l in block.splitlines()).split())


def _where(got, want):
    """The two texts from the first word where they part."""
    g, w = got.split(), want.split()
    i = 0
    while i < min(len(g), len(w)) and g[i] == w[i]:
        i += 1
    return '"%s" (header: "%s")' % (' '.join(g[i:i + 10]), ' '.join(w[i:i + 10]))


def type_docs(header):
    """The header's comments of its types and their members: ({type name:
    comment}, {(type name, member name): comment}); a comment is the raw
    C comment text (None when there is none). A type's is the comment
    right above its typedef or enum; a struct field's the one after it
    on its line; an enum constant's the one after it, else the one on the
    lines above it."""
    types, members = {}, {}
    for m in re.finditer(r'(/\*(?:(?!/\*).)*?\*/)[ \t]*\n(?:typedef struct (porter_\w+)\b|'
                         r'enum (porter_\w+) \{)', header, re.S):
        types[m.group(2) or m.group(3)] = m.group(1)
    for sname, body in re.findall(r'typedef struct (porter_\w+)\s*\{(.*?)\}', header, re.S):
        for f in re.finditer(r'([^;{}]*?)(\w+)\s*;[ \t]*(/\*.*?\*/)?', body, re.S):
            for d in (f.group(1) + f.group(2)).split(','):
                members[(sname, d.replace('*', ' ').split()[-1])] = f.group(3)
    for ename, body in re.findall(r'enum (porter_\w+) \{(.*?)\};', header, re.S):
        pending = None
        for t in re.finditer(r'(/\*.*?\*/)|(PORTER_\w+)\s*=\s*-?\d+\s*,?[ \t]*(/\*.*?\*/)?',
                             body, re.S):
            if t.group(1):
                pending = t.group(1)
            else:
                members[(ename, t.group(2))] = t.group(3) or pending
                pending = None
    return types, members


def compare_docs(header, dart):
    """The doc comments of the bound functions, types, struct fields and
    enum members must say what porter.h says above (or after) them, since they are what
    an IDE shows a Dart user: a comment edited in the header and not in the
    bindings leaves the Dart user reading the old contract (how a NULL
    options pointer is read, how long an idle stream lives)."""
    types, members = type_docs(header)

    def text(c):
        return c_comment_text(c) if c else ''
    errors = []
    for name, _, _, comment in header_functions(header):
        m = re.search(r'((?:^  ///[^\n]*\n)*)^  [\w<>.]+ %s\(' % name, dart, re.M)
        if not m:
            continue  # compare() reports a function without its wrapper
        got, want = dart_doc_text(m.group(1)), text(comment)
        if got != want:
            errors.append('doc of %s differs from the header at %s' % (name, _where(got, want)))
    for m in re.finditer(r'((?:^///[^\n]*\n)*)^(?:final |sealed )class (porter_\w+)[^{\n]*\{'
                         r'(?:\}|(.*?)\n\})', dart, re.M | re.S):
        name = m.group(2)
        got, want = dart_doc_text(m.group(1)), text(types.get(name))
        if got != want:
            errors.append('doc of %s differs from the header at %s' % (name, _where(got, want)))
        for f in re.finditer(r'((?:  ///[^\n]*\n)*)(?:  @ffi\.\w+\(\)\n)?  '
                             r'(?:external [\w<>.]+|static const) (\w+)(?:;| =)', m.group(3) or ''):
            got, want = dart_doc_text(f.group(1)), text(members.get((name, f.group(2))))
            if got != want:
                errors.append('doc of %s.%s differs from the header at %s'
                              % (name, f.group(2), _where(got, want)))
    return errors


# Deliberate breakages the check must catch: (what, old, new).
BREAKAGES = [
    ('a size_t parameter bound as int',
     'ffi.Int Function(ffi.Pointer<ffi.Void>, ffi.Size, ffi.Uint64, ffi.Int)',
     'ffi.Int Function(ffi.Pointer<ffi.Void>, ffi.Int, ffi.Uint64, ffi.Int)'),
    ('a renumbered error code', 'PORTER_E_TIMEOUT = -4;', 'PORTER_E_TIMEOUT = -5;'),
    ('a struct field of the wrong width',
     '@ffi.Uint32()\n  external int worker;', '@ffi.Uint64()\n  external int worker;'),
    ('a function the header lacks', "'porter_reset'", "'porter_restart'"),
    ('a struct pointer field of the wrong type',
     'external ffi.Pointer<ffi.Void> value;', 'external ffi.Pointer<ffi.Uint8> value;'),
    ('a field missing from a two-declarator line',
     '@ffi.Uint32()\n  external int gid;\n', ''),
    ('an unsigned parameter bound as int',
     'ffi.Size, ffi.UnsignedInt, ffi.Uint32, ffi.Uint64',
     'ffi.Size, ffi.Int, ffi.Uint32, ffi.Uint64'),
    ('a wrong flag value', 'PORTER_FILE_ATOMIC = 16;', 'PORTER_FILE_ATOMIC = 8;'),
    ('a file flag macro of another value',
     'const int PORTER_FILE_NO_REPLACE = 512;', 'const int PORTER_FILE_NO_REPLACE = 0x100;'),
    ('a file flag macro left unbound', 'const int PORTER_FILE_PARENTS = 256;', ''),
    ('a wrong version string', "PORTER_VERSION_STRING = '", "PORTER_VERSION_STRING = 'x"),
    ('a header function left unbound',
     "_lookup<ffi.NativeFunction<ffi.Int Function()>>(\n          'porter_http_last_status')",
     "_unbound('porter_http_last_status')"),
    ('a header struct left unbound',
     'final class porter_http_timings extends ffi.Struct {', 'final class http_timings extends ffi.Struct {'),
    ('a header opaque type left unbound',
     'final class porter_http_stream extends ffi.Opaque {}', ''),
    ('an asFunction type that differs from the header',
     "_porter_pingPtr.asFunction<int Function(ffi.Pointer<ffi.Void>, int, int, int)>()",
     "_porter_pingPtr.asFunction<int Function(ffi.Pointer<ffi.Void>, int, int)>()"),
    ('a wrapper parameter of the wrong type',
     '  int porter_db_cursor_read(\n    ffi.Pointer<porter_db_cursor> cur,',
     '  int porter_db_cursor_read(\n    ffi.Pointer<ffi.Void> cur,'),
    ('a wrapper that passes its arguments in the wrong order',
     'return _porter_db_close(\n      session,\n      call_id,',
     'return _porter_db_close(\n      call_id,\n      session,'),
    ('a free function without its symbol address',
     'get porter_db_cursor_free => _library._porter_db_cursor_freePtr;',
     'get porter_db_cursor_fre => _library._porter_db_cursor_freePtr;'),
    ('an HTTP options field of the wrong width',
     '@ffi.Uint64()\n  external int max_response;', '@ffi.Uint32()\n  external int max_response;'),
    ('a struct doc the header no longer says',
     '/// Per-request options. A NULL options pointer means all defaults.',
     '/// Per-request options. A NULL options pointer means all zero.'),
    ('a struct field doc the header no longer says',
     '/// whole requests: 0, the call', '/// 0: the call'),
    ('an enum member doc the header no longer says',
     '/// contents or attributes\n', '/// contents\n'),
    ('an opaque type without the header doc',
     '/// Watches: change events', '// Watches: change events'),
    ('a function doc the header no longer says',
     '/// The library version string, e.g. "0.1.0"; static, never NULL.',
     '/// The library version string.'),
    ('a blocking call marked as a leaf call',
     "'porter_ping');", "'porter_ping', isLeaf: true);"),
]


def selftest(header, dart):
    failed = 0
    errors, _, _ = compare(header, dart)
    if errors:
        print('FAIL the committed bindings do not pass: %s' % errors[0])
        failed += 1
    for what, old, new in BREAKAGES:
        if old not in dart:
            print('FAIL cannot apply breakage "%s"' % what)
            failed += 1
            continue
        errors, _, _ = compare(header, dart.replace(old, new, 1))
        print('%s %s' % ('PASS caught' if errors else 'FAIL missed', what))
        failed += not errors
    return 1 if failed else 0


def read_header(path, dirs):
    """The header's text with its local includes ("porter_*.h", found in
    the header's own folder or a -I folder) inlined in place, so that the
    error list (porter_errors.h) and the generated version macros
    (porter_version.h) are checked too."""
    text = open(path).read()

    def inline(m):
        for d in [os.path.dirname(path)] + dirs:
            p = os.path.join(d, m.group(1))
            if os.path.exists(p):
                return read_header(p, dirs)
        sys.exit('%s: cannot find included %s (add -I DIR)' % (path, m.group(1)))
    return re.sub(r'^#include "(porter_\w+\.h)".*$', inline, text, flags=re.M)


def main():
    args = sys.argv[1:]
    dirs = []
    while len(args) > 1 and args[0] == '-I':
        dirs.append(args[1])
        args = args[2:]
    if args and args[0] == '--selftest':
        return selftest(read_header(args[1], dirs), open(args[2]).read())
    header = read_header(args[0], dirs)
    dart = open(args[1]).read()
    errors, notes, nbound = compare(header, dart)
    for n in notes:
        print('note: ' + n)
    for e in errors:
        print('bindings.g.dart: ' + e)
    print('checked %d bound functions against %s' % (nbound, args[0]))
    return 1 if errors else 0


if __name__ == '__main__':
    sys.exit(main())
