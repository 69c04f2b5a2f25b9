// Which top-level names of the package each Dart file can see, for
// check_api_calls.js: a library's own top-level declarations (its file
// and its parts) and what its imports bring in, each import's show and
// hide applied, through the exports of what it imports (porter.dart's
// `export 'src/...' show ...` lists). Imports of dart: and other packages
// bring in nothing of the package's; prefixed imports (`as http`) bring
// in nothing unprefixed.
'use strict';

const path = require('path');

function named(node) {
  const out = [];
  for (let i = 0; i < node.namedChildCount; i++) out.push(node.namedChild(i));
  return out;
}

function descendant(node, type) {
  if (node.type === type) return node;
  for (const c of named(node)) {
    const d = descendant(c, type);
    if (d) return d;
  }
  return null;
}

// The file a URI names, or null for dart: and other packages' URIs.
function resolve(uri, from, pkg) {
  if (uri.startsWith('package:porter/')) {
    return path.resolve(pkg, 'lib', uri.slice('package:porter/'.length));
  }
  if (/^[a-z]+:/.test(uri)) return null;
  return path.resolve(path.dirname(from), uri);
}

function uriOf(node) {
  const s = descendant(node, 'string_literal');
  return s ? s.text.slice(1, -1) : null;
}

// show/hide of an import or export: { show: Set|null, hide: Set }.
function combinators(node) {
  const c = { show: null, hide: new Set() };
  for (const k of named(node)) {
    if (k.type !== 'combinator') continue;
    const ids = named(k).filter((i) => i.type === 'identifier').map((i) => i.text);
    if (k.text.trimStart().startsWith('show')) {
      c.show = new Set([...(c.show || []), ...ids]);
    } else {
      for (const i of ids) c.hide.add(i);
    }
  }
  return c;
}

function filter(names, c) {
  const out = new Set();
  for (const n of names) {
    if (c.show && !c.show.has(n)) continue;
    if (c.hide.has(n)) continue;
    out.add(n);
  }
  return out;
}

// The directives and top-level names of one parsed file.
function fileInfo(file, tree, pkg) {
  const info = { imports: [], exports: [], parts: [], partOf: null, names: new Set() };
  for (const n of named(tree.rootNode)) {
    switch (n.type) {
      case 'import_or_export': {
        const imp = descendant(n, 'library_import');
        if (imp) {
          const spec = descendant(imp, 'import_specification');
          const prefixed = spec && named(spec).some((c) => c.type === 'identifier');
          const target = resolve(uriOf(imp) || '', file, pkg);
          if (target && !prefixed) info.imports.push({ target, ...combinators(spec) });
        } else {
          const exp = descendant(n, 'library_export');
          const target = exp && resolve(uriOf(exp) || '', file, pkg);
          if (target) info.exports.push({ target, ...combinators(exp) });
        }
        break;
      }
      case 'part_directive': {
        const target = resolve(uriOf(n) || '', file, pkg);
        if (target) info.parts.push(target);
        break;
      }
      case 'part_of_directive':
        info.partOf = resolve(uriOf(n) || '', file, pkg);
        break;
      case 'function_signature':
      case 'class_definition':
      case 'enum_declaration':
      case 'extension_declaration':
      case 'type_alias': {
        const name = n.childForFieldName('name') || named(n).find((c) => c.type === 'identifier');
        if (name) info.names.add(name.text);
        break;
      }
      case 'mixin_declaration': {
        const name = named(n).find((c) => c.type === 'identifier');
        if (name) info.names.add(name.text);
        break;
      }
      default:
        break;
    }
  }
  return info;
}

// { visible(file) -> Set of names, declaredIn(name) -> file } over
// [files] ({ file, tree } of every file read).
function scopes(files, pkg) {
  const infos = new Map();
  for (const { file, tree } of files) {
    const key = path.resolve(file);
    if (!infos.has(key)) infos.set(key, fileInfo(key, tree, pkg));
  }
  const libraryOf = (file) => {
    const i = infos.get(file);
    return i && i.partOf ? i.partOf : file;
  };
  // A library's own names: its file's and its parts'.
  const own = (lib) => {
    const i = infos.get(lib);
    const out = new Set(i ? i.names : []);
    for (const p of i ? i.parts : []) {
      for (const n of (infos.get(p) || { names: [] }).names) out.add(n);
    }
    return out;
  };
  const exportMemo = new Map();
  const exported = (lib) => {
    if (exportMemo.has(lib)) return exportMemo.get(lib);
    const out = new Set();
    exportMemo.set(lib, out); // a cycle sees what is known so far
    for (const n of own(lib)) if (!n.startsWith('_')) out.add(n);
    for (const e of (infos.get(lib) || { exports: [] }).exports) {
      for (const n of filter(exported(e.target), e)) out.add(n);
    }
    return out;
  };
  const visibleMemo = new Map();
  const visible = (file) => {
    const lib = libraryOf(path.resolve(file));
    if (visibleMemo.has(lib)) return visibleMemo.get(lib);
    const out = own(lib);
    for (const imp of (infos.get(lib) || { imports: [] }).imports) {
      for (const n of filter(exported(imp.target), imp)) out.add(n);
    }
    visibleMemo.set(lib, out);
    return out;
  };
  const declaredIn = new Map();
  for (const [file, info] of infos) {
    for (const n of info.names) if (!declaredIn.has(n)) declaredIn.set(n, file);
  }
  return { visible, exported, declaredIn };
}

module.exports = { scopes };
