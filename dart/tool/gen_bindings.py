#!/usr/bin/env python3
"""Regenerates the functions of lib/src/bindings.g.dart (the PorterBindings
methods and the symbol addresses of every free function) from porter.h, in
the layout `dart run ffigen` writes, for machines without a Dart SDK.
The doc comments of structs, their fields, opaque types and enums are
rewritten from the header's too; their declarations and constants are left
as they are (check_bindings.py checks them against the header).

Usage: gen_bindings.py [-I DIR]... HEADER BINDINGS   (rewrites BINDINGS)
"""
import os
import re
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from check_bindings import (dart_type, header_functions, read_header,  # noqa: E402
                            split_params_named, type_docs)


def doc_lines(comment, indent='  '):
    """A C comment as `///` lines."""
    body = comment.strip()
    body = re.sub(r'^/\*+', '', body)
    body = re.sub(r'\*/$', '', body)
    out = []
    for line in body.split('\n'):
        line = re.sub(r'^\s*\*? ?', '', line).rstrip()
        out.append(line)
    while out and not out[0].strip():
        out.pop(0)
    while out and not out[-1].strip():
        out.pop()
    return [indent + '///' + (' ' + l if l else '') for l in out]


def regen_docs(header, dart):
    """Rewrites the `///` block above each bound type, struct field and
    enum member with the header's comment for it (removed when it has
    none)."""
    types, members = type_docs(header)

    def block(comment, indent):
        return ''.join(l + '\n' for l in doc_lines(comment, indent)) if comment else ''

    dart = re.sub(r'^((?:///[^\n]*\n)*)((?:final |sealed )class (porter_\w+))',
                  lambda m: block(types.get(m.group(3)), '') + m.group(2), dart, flags=re.M)

    def one_class(m):
        owner = m.group(1)
        body = re.sub(
            r'((?:  ///[^\n]*\n)*)((?:  @ffi\.\w+\(\)\n)?  (?:external [\w<>.]+|static const) '
            r'(\w+)(?:;| =))',
            lambda f: block(members.get((owner, f.group(3))), '  ') + f.group(2), m.group(2))
        return m.group(0)[:m.start(2) - m.start(0)] + body + '\n}'
    return re.sub(r'^(?:final |sealed )class (porter_\w+)[^{\n]*\{(?!\})(.*?)\n\}', one_class, dart,
                  flags=re.M | re.S)


def method(name, ret, params, comment):
    ffi_ret, dret = ret
    lines = doc_lines(comment) if comment else []
    if params:
        lines.append('  %s %s(' % (dret, name))
        lines += ['    %s %s,' % (d, n) for _, d, n in params]
        lines.append('  ) {')
        lines.append('    return _%s(' % name)
        lines += ['      %s,' % n for _, _, n in params]
        lines.append('    );')
    else:
        lines.append('  %s %s() {' % (dret, name))
        lines.append('    return _%s();' % name)
    lines.append('  }')
    lines.append('')
    native = '%s Function(%s)' % (ffi_ret, ', '.join(f for f, _, _ in params))
    dsig = '%s Function(%s)' % (dret, ', '.join(d for _, d, _ in params))
    lines.append('  late final _%sPtr =' % name)
    lines.append('      _lookup<ffi.NativeFunction<%s>>(' % native)
    lines.append("          '%s');" % name)
    lines.append('  late final _%s =' % name)
    lines.append('      _%sPtr.asFunction<%s>();' % (name, dsig))
    return lines, native


def generate(header, dart):
    methods = []
    frees = []
    for name, ret, params, comment in header_functions(header):
        ps = split_params_named(params)
        ffi_ret = dart_type(ret, native=True)
        lines, native = method(name, (ffi_ret, dart_type(ret)),
                               [(dart_type(t, native=True), dart_type(t), n) for t, n in ps],
                               comment)
        methods.append('\n'.join(lines))
        if name.endswith('_free') and ffi_ret == 'ffi.Void' and len(ps) == 1:
            frees.append((name, native))
    cls = ('class PorterBindings {\n'
           '  /// Holds the symbol lookup function.\n'
           '  final ffi.Pointer<T> Function<T extends ffi.NativeType>(String symbolName)\n'
           '      _lookup;\n\n'
           '  /// The symbols are looked up in [dynamicLibrary].\n'
           '  PorterBindings(ffi.DynamicLibrary dynamicLibrary)\n'
           '      : _lookup = dynamicLibrary.lookup;\n\n'
           '  /// The symbols are looked up with [lookup].\n'
           '  PorterBindings.fromLookup(\n'
           '      ffi.Pointer<T> Function<T extends ffi.NativeType>(String symbolName)\n'
           '          lookup)\n'
           '      : _lookup = lookup;\n\n'
           + '\n\n'.join(methods) +
           '\n\n  late final addresses = _SymbolAddresses(this);\n}\n')
    addrs = ('class _SymbolAddresses {\n'
             '  final PorterBindings _library;\n'
             '  _SymbolAddresses(this._library);\n'
             + ''.join('  ffi.Pointer<ffi.NativeFunction<%s>>\n      get %s => _library._%sPtr;\n'
                       % (native, name, name) for name, native in frees) +
             '}\n')
    i = dart.index('class PorterBindings {')
    j = dart.index('\n}\n', i) + 3
    dart = dart[:i] + cls + dart[j:]
    i = dart.index('class _SymbolAddresses {')
    j = dart.index('\n}\n', i) + 3
    return regen_docs(header, dart[:i] + addrs + dart[j:])


def main():
    args = sys.argv[1:]
    dirs = []
    while len(args) > 1 and args[0] == '-I':
        dirs.append(args[1])
        args = args[2:]
    header = read_header(args[0], dirs)
    with open(args[1]) as f:
        dart = f.read()
    out = generate(header, dart)
    with open(args[1], 'w') as f:
        f.write(out)
    return 0


if __name__ == '__main__':
    sys.exit(main())
