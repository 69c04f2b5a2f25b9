#!/usr/bin/env node
// What a Dart compiler would refuse first in code that uses the package,
// found without a Dart SDK: calls of the package's own functions, methods
// and constructors with arguments none of them takes (a renamed or removed
// named parameter, too many or too few positional ones, a required named
// one left out), a function or class of the package named where it is
// not in scope (not imported, or not exported by package:porter/porter.dart
// to a README example; dart_scope.js), `const` on a constructor that is
// not, a switch over an enum of the package that leaves a constant out,
// a local variable declared twice in one block, and (what compiles but
// ends a program) a stream listened to without onError outside the
// tests. The
// package's own declarations (lib/, bindings.g.dart excepted) are read
// with the tree-sitter Dart grammar; the calls checked are those in lib/,
// test/, example/ and the ```dart blocks of README.md (a block without a
// top-level declaration is checked as the body of a function, as a reader
// would paste it).
//
// When the receiver's type is known - a class of the package named
// (`PorterPool.spawn`, `DbCursor.own`), or a variable declared with such
// a type or initialised with a constructor or a call returning one
// (`final pool = await PorterPool.spawn()`) - only that type's members
// and its supertypes' count (Porter.query takes callId, PorterPool.query
// cancel), and a member it lacks is reported, for calls and for reads
// without a call alike (a getter, field, static or tear-off: `s.connections`,
// `FileWriteFlags.atomic`); a variable initialised from a typed variable's
// method (`final r = porter.httpGet(...)`) gets that method's return type,
// and an untyped parameter (`(h) => h.name`) hides a typed variable of the
// same name. Otherwise a call is checked
// only when its name is declared in lib/ and is not also a variable,
// field or parameter there (a call through a function value could be
// anything), and passes when any declaration of that name takes its
// arguments. Calls of generic methods (`get<int>(...)`) are not seen: the
// grammar reads them as comparisons.
//
// Usage: node check_api_calls.js MODULES_DIR PACKAGE_DIR [EXTRA.dart...]
//   EXTRA  more files checked against PACKAGE_DIR's declarations (the
//          selftest's fixtures)
// Exit status: 0 every call matches, 1 findings, 2 set-up problem.
'use strict';

const fs = require('fs');
const path = require('path');

const { loadParser } = require('./dart_parser');
const { scopes } = require('./dart_scope');

function dartFiles(dir, out) {
  if (!fs.existsSync(dir)) return out;
  for (const name of fs.readdirSync(dir).sort()) {
    if (name.startsWith('.') || name === 'build') continue;
    const p = path.join(dir, name);
    if (fs.statSync(p).isDirectory()) dartFiles(p, out);
    else if (name.endsWith('.dart') && name !== 'bindings.g.dart') out.push(p);
  }
  return out;
}

// Every node of a tree, depth first, without recursion.
function* nodes(root) {
  const cursor = root.walk();
  for (;;) {
    yield cursor.currentNode;
    if (cursor.gotoFirstChild()) continue;
    while (!cursor.gotoNextSibling()) {
      if (!cursor.gotoParent()) return;
    }
  }
}

function named(node) {
  const out = [];
  for (let i = 0; i < node.namedChildCount; i++) out.push(node.namedChild(i));
  return out;
}

// The parameters of a formal_parameter_list: required positional count,
// optional positional count, named names, required named names.
function params(list) {
  const sig = { req: 0, opt: 0, named: new Set(), required: new Set() };
  if (!list) return sig;
  for (const c of named(list)) {
    if (c.type === 'formal_parameter') {
      sig.req++;
    } else if (c.type === 'optional_formal_parameters') {
      const isNamed = c.text.trimStart().startsWith('{');
      for (const p of named(c)) {
        if (p.type !== 'formal_parameter') continue;
        if (!isNamed) {
          sig.opt++;
          continue;
        }
        const ids = named(p).filter((n) => n.type === 'identifier');
        let id = p.childForFieldName('name') || ids[ids.length - 1];
        if (!id) {
          // this.x / super.x: the identifier inside.
          const inner = named(p)[0];
          const innerIds = inner ? named(inner).filter((n) => n.type === 'identifier') : [];
          id = innerIds[innerIds.length - 1];
        }
        if (!id) continue;
        sig.named.add(id.text);
        // `required` is a token before the parameter, not inside it.
        const prev = p.previousSibling;
        if ((prev && prev.type === 'required') || /^\s*required\b/.test(p.text)) {
          sig.required.add(id.text);
        }
      }
    }
  }
  return sig;
}

function firstOfType(node, type) {
  return named(node).find((n) => n.type === type) || null;
}

// The class, mixin or extension a declaration is in (null: top level).
function ownerOf(node) {
  for (let p = node.parent; p; p = p.parent) {
    if (p.type === 'class_definition' || p.type === 'extension_declaration') {
      const name = p.childForFieldName('name');
      return name ? name.text : null;
    }
    if (p.type === 'mixin_declaration') {
      const id = firstOfType(p, 'identifier');
      return id ? id.text : null;
    }
  }
  return null;
}

// A type's class name: `Future<PorterPool>?` -> Future, with [arg] the
// first type argument's (PorterPool).
function typeName(text) {
  const m = /^\s*(?:static\s+|external\s+)*([A-Za-z_]\w*)(?:\s*<\s*([A-Za-z_]\w*))?/.exec(text || '');
  return m ? { name: m[1], arg: m[2] || null } : null;
}

// Declarations of lib/: every function, method and constructor ({ name,
// sig, owner, ctor, ret }), the types (classes, mixins, extensions) with
// their supertypes, and the names that are also variables, fields or
// parameters somewhere (calls of those are not checked by name alone).
function declarations(trees) {
  const decls = new Map();
  const values = new Set();
  const types = new Map(); // name -> { supers: [names], ctor: explicit constructor seen }
  const add = (d) => {
    if (!decls.has(d.name)) decls.set(d.name, []);
    decls.get(d.name).push(d);
  };
  // Getters, setters and fields: name -> owners.
  const props = new Map();
  const prop = (name, owner) => {
    if (!props.has(name)) props.set(name, new Set());
    props.get(name).add(owner);
  };
  const type = (name) => {
    if (!types.has(name)) types.set(name, { supers: [], ctor: false, isClass: false });
    return types.get(name);
  };
  for (const { tree } of trees) {
    for (const n of nodes(tree.rootNode)) {
      switch (n.type) {
        case 'class_definition': {
          const name = n.childForFieldName('name');
          if (!name) break;
          const t = type(name.text);
          t.isClass = true;
          for (const part of ['superclass', 'interfaces']) {
            const sup = n.childForFieldName(part);
            if (!sup) continue;
            for (const x of nodes(sup)) if (x.type === 'type_identifier') t.supers.push(x.text);
          }
          break;
        }
        case 'mixin_declaration': {
          const ids = named(n).filter((c) => c.type === 'identifier');
          if (!ids.length) break;
          const t = type(ids[0].text);
          for (const c of named(n)) if (c.type === 'type_identifier') t.supers.push(c.text);
          break;
        }
        case 'extension_declaration': {
          const name = n.childForFieldName('name');
          const on = n.childForFieldName('class');
          if (name && on) type(on.text).supers.push(name.text), type(name.text);
          break;
        }
        case 'function_signature': {
          const name = n.childForFieldName('name');
          if (!name) break;
          add({
            name: name.text,
            sig: params(firstOfType(n, 'formal_parameter_list')),
            owner: ownerOf(n),
            top: n.parent !== null && n.parent.type === 'program',
            ctor: false,
            ret: n.text.slice(0, name.startIndex - n.startIndex),
          });
          break;
        }
        case 'constructor_signature':
        case 'constant_constructor_signature':
        case 'factory_constructor_signature':
        case 'redirecting_factory_constructor_signature': {
          const ids = named(n).filter((c) => c.type === 'identifier');
          if (ids.length === 0) break;
          type(ids[0].text).ctor = true;
          const list = n.childForFieldName('parameters') || firstOfType(n, 'formal_parameter_list');
          add({
            name: ids.length > 1 ? ids[1].text : ids[0].text,
            sig: params(list),
            owner: ids[0].text,
            ctor: true,
            isConst: n.type === 'constant_constructor_signature' || /^\s*const\b/.test(n.text),
            ret: ids[0].text,
          });
          break;
        }
        case 'initialized_variable_definition':
        case 'initialized_identifier':
        case 'static_final_declaration': {
          const name = n.childForFieldName('name') || firstOfType(n, 'identifier');
          if (name) values.add(name.text);
          // A field (a declaration in a class, mixin or extension body):
          // a member read without a call.
          if (name && n.type !== 'initialized_variable_definition') {
            const owner = ownerOf(n);
            if (owner) prop(name.text, owner);
          }
          break;
        }
        case 'getter_signature':
        case 'setter_signature': {
          const name = n.childForFieldName('name');
          const owner = ownerOf(n);
          if (name && owner) prop(name.text, owner);
          break;
        }
        case 'formal_parameter': {
          const name = n.childForFieldName('name');
          if (name) values.add(name.text);
          break;
        }
        default:
          break;
      }
    }
  }
  // A class without a constructor has the implicit unnamed one.
  for (const [name, t] of types) {
    if (t.isClass && !t.ctor) {
      add({ name, sig: { req: 0, opt: 0, named: new Set(), required: new Set() },
        owner: name, ctor: true, ret: name });
    }
  }
  return { decls, values, types, props };
}

// Supertypes of the package's types that bring no member a call could
// mean (their members are not named like the package's).
const HARMLESS_SUPERS = new Set(['Object', 'Finalizable', 'Exception', 'Comparable']);

// The members named [name] of type [t] and its supertypes (mixins,
// interfaces, extensions); [open] when a supertype is not the package's
// (package:http's BaseClient), so a member may come from there.
function members(api, t, name, statics, props = false) {
  const found = [];
  let open = false;
  const seen = new Set();
  const queue = [t];
  while (queue.length) {
    const cur = queue.shift();
    if (seen.has(cur)) continue;
    seen.add(cur);
    const info = api.types.get(cur);
    if (!info) {
      if (!HARMLESS_SUPERS.has(cur)) open = true;
      continue;
    }
    for (const d of api.decls.get(name) || []) {
      if (d.owner === cur && (statics || !d.ctor)) found.push(d);
    }
    if (props && (api.props.get(name) || new Set()).has(cur)) found.push({ prop: true });
    queue.push(...info.supers);
  }
  return { found, open };
}

// The static types of the variables of a file that one can tell without
// inference: declared with a type of the package, or initialised with a
// constructor of the package's or a call whose return type is one
// (`await PorterPool.spawn()`). A name given two types in one file is
// left out.
function variableTypes(tree, api, known = new Map()) {
  const seen = new Map();
  const note = (name, t) => {
    if (!t || !api.types.has(t)) t = '?';
    if (!seen.has(name)) seen.set(name, new Set());
    seen.get(name).add(t);
  };
  const valueType = (first, rest) => {
    // `await X.m(...)`, `X(...)`, `X.named(...)`, `X.m(...)`.
    let e = first;
    let awaited = false;
    if (e && e.type === 'unary_expression') e = named(e)[0];
    if (e && e.type === 'await_expression') {
      awaited = true;
      rest = named(e).slice(1);
      e = named(e)[0];
    }
    if (e && (e.type === 'const_object_expression' || e.type === 'new_expression')) {
      const t = firstOfType(e, 'type_identifier');
      return t ? t.text : null;
    }
    if (!e || e.type !== 'identifier') return null;
    const sels = rest.filter((r) => r.type === 'selector');
    if (sels.length === 1 && firstOfType(sels[0], 'argument_part')) return e.text;
    if (sels.length === 2 && firstOfType(sels[1], 'argument_part')) {
      const sel = firstOfType(sels[0], 'unconditional_assignable_selector');
      const m = sel && firstOfType(sel, 'identifier');
      if (!m) return null;
      // `X.m(...)` of a class X, or `v.m(...)` of a variable whose type
      // an earlier pass found.
      const statics = api.types.has(e.text);
      const owner = statics ? e.text : known.get(e.text);
      if (!owner) return null;
      const d = members(api, owner, m.text, statics).found.find((x) => !x.prop);
      if (!d) return null;
      const r = typeName(d.ret);
      if (!r) return null;
      return awaited && r.name === 'Future' ? r.arg : r.name;
    }
    return null;
  };
  for (const n of nodes(tree.rootNode)) {
    if (n.type === 'initialized_variable_definition') {
      const name = n.childForFieldName('name');
      if (!name) continue;
      const declared = named(n).find((c) => c.type === 'type_identifier' && c.startIndex < name.startIndex);
      const values = named(n).filter((c) => c.startIndex > name.startIndex);
      note(name.text, declared ? declared.text : valueType(values[0], values.slice(1)));
    } else if (n.type === 'formal_parameter') {
      // An untyped parameter (`(h) => h.name`) has no name field: its
      // identifier; it shadows any typed variable of that name.
      const ids = named(n).filter((c) => c.type === 'identifier');
      const name = n.childForFieldName('name') || ids[ids.length - 1];
      const t = firstOfType(n, 'type_identifier');
      if (name) note(name.text, t ? t.text : null);
    } else if (n.type === 'initialized_identifier' || n.type === 'static_final_declaration') {
      const id = firstOfType(n, 'identifier');
      const before = n.parent && n.parent.previousNamedSibling;
      if (id) note(id.text, before && before.type === 'type_identifier' ? before.text : null);
    }
  }
  const out = new Map();
  for (const [name, ts] of seen) if (ts.size === 1 && !ts.has('?')) out.set(name, [...ts][0]);
  // A second pass types what is initialised from a typed variable's
  // method (`final r = porter.query(...)`).
  if (known.size === 0 && out.size > 0) return variableTypes(tree, api, out);
  return out;
}

// Every call in a tree: { name, positional, labels, node }.
function* calls(tree) {
  for (const n of nodes(tree.rootNode)) {
    let nameNode = null;
    let args = null;
    let plain = false; // name(...) or const Name(...): no receiver, no cascade
    let constCall = false; // const Name(...) or const Name.named(...)
    if (n.type === 'selector') {
      const part = firstOfType(n, 'argument_part');
      if (!part) continue;
      args = firstOfType(part, 'arguments');
      const prev = n.previousNamedSibling;
      if (!prev) continue;
      if (prev.type === 'identifier') {
        nameNode = prev;
        plain = true;
      } else if (prev.type === 'unconditional_assignable_selector' ||
                 prev.type === 'conditional_assignable_selector') {
        nameNode = firstOfType(prev, 'identifier');
      } else if (prev.type === 'selector') {
        const sel = firstOfType(prev, 'unconditional_assignable_selector') ||
          firstOfType(prev, 'conditional_assignable_selector');
        if (sel) nameNode = firstOfType(sel, 'identifier');
      }
    } else if (n.type === 'argument_part' && n.parent && n.parent.type === 'cascade_section') {
      const prev = n.previousNamedSibling;
      if (prev && prev.type === 'cascade_selector') nameNode = firstOfType(prev, 'identifier');
      args = firstOfType(n, 'arguments');
    } else if (n.type === 'const_object_expression' || n.type === 'new_expression') {
      nameNode = firstOfType(n, 'identifier') || firstOfType(n, 'type_identifier');
      plain = nameNode !== null && nameNode.type === 'type_identifier';
      constCall = n.type === 'const_object_expression';
      args = firstOfType(n, 'arguments');
    }
    if (!nameNode || !args) continue;
    let positional = 0;
    const labels = [];
    const list = named(args).filter((a) => a.type === 'argument' || a.type === 'named_argument');
    for (let i = 0; i < list.length; i++) {
      const a = list[i];
      if (a.type === 'argument') positional++;
      else {
        const label = firstOfType(a, 'label');
        const id = label && firstOfType(label, 'identifier');
        if (id) labels.push(id.text);
      }
      // The grammar reads `f(g<A, B>(x))` as two arguments, `g < A` and
      // `B > (x)`: the second is no argument of its own.
      if (/<\s*[\w.?]+\s*$/.test(a.text) && i + 1 < list.length && list[i + 1].type === 'argument') i++;
    }
    yield { name: nameNode.text, positional, labels, node: nameNode, recv: receiver(nameNode), plain, constCall };
  }
}

// Every member read without a call in a tree (`x.name`, `x?.name`, a
// tear-off `x.method`): { name, node, recv } with the identifier it is
// selected on. Calls are calls()'s.
function* reads(tree) {
  for (const n of nodes(tree.rootNode)) {
    if (n.type !== 'selector') continue;
    const sel = firstOfType(n, 'unconditional_assignable_selector') ||
      firstOfType(n, 'conditional_assignable_selector');
    const id = sel && firstOfType(sel, 'identifier');
    if (!id) continue;
    const prev = n.previousNamedSibling;
    if (!prev || prev.type !== 'identifier') continue;
    const next = n.nextNamedSibling;
    if (next && next.type === 'selector' && firstOfType(next, 'argument_part')) continue;
    yield { name: id.text, node: id, recv: prev.text };
  }
}

// Members every object has.
const OBJECT_MEMBERS = new Set(['hashCode', 'runtimeType']);

// The identifier a call's name is selected on (`X` of `X.name(...)`),
// or null.
function receiver(nameNode) {
  let sel = nameNode.parent;
  if (!sel) return null;
  if (sel.type !== 'unconditional_assignable_selector' && sel.type !== 'conditional_assignable_selector') {
    return null;
  }
  if (sel.parent && sel.parent.type === 'selector') sel = sel.parent;
  const prev = sel.previousNamedSibling;
  return prev && prev.type === 'identifier' ? prev.text : null;
}

// Members of dart:core, dart:async and dart:io types that the package
// also declares: a call of one may be either, so only its named arguments
// are checked (none of those take any the package's do not).
const SDK_MEMBERS = new Set(['write']);

function accepts(sig, call, typed) {
  if (!typed && SDK_MEMBERS.has(call.name)) return call.labels.every((l) => sig.named.has(l));
  if (call.positional < sig.req || call.positional > sig.req + sig.opt) return false;
  for (const l of call.labels) if (!sig.named.has(l)) return false;
  for (const r of sig.required) if (!call.labels.includes(r)) return false;
  return true;
}

function describe(sig) {
  const parts = [];
  if (sig.req) parts.push(`${sig.req} positional`);
  if (sig.opt) parts.push(`[${sig.opt} optional]`);
  if (sig.named.size) {
    parts.push(`{${[...sig.named].map((n) => (sig.required.has(n) ? `required ${n}` : n)).join(', ')}}`);
  }
  return `(${parts.join(', ')})`;
}

// The members of every enum of [trees]: name -> Set of its constants.
function enums(trees) {
  const out = new Map();
  for (const { tree } of trees) {
    for (const n of nodes(tree.rootNode)) {
      if (n.type !== 'enum_declaration') continue;
      const name = n.childForFieldName('name');
      const body = firstOfType(n, 'enum_body');
      if (!name || !body) continue;
      out.set(name.text, new Set(named(body).filter((c) => c.type === 'enum_constant')
        .map((c) => (c.childForFieldName('name') || c).text)));
    }
  }
  return out;
}

// Switches over an enum of the package whose cases name its constants
// (`E.a`, `E.a || E.b`) with no default, wildcard or other pattern: a
// constant left out is a compile error (Dart 3 switches on enums must be
// exhaustive). Yields { node, type, missing }.
function* partialSwitches(tree, enumMembers) {
  for (const n of nodes(tree.rootNode)) {
    if (n.type !== 'switch_expression' && n.type !== 'switch_statement') continue;
    const block = n.type === 'switch_statement' ? firstOfType(n, 'switch_block') : n;
    if (!block) continue;
    const cases = named(block).filter((c) => c.type !== 'parenthesized_expression');
    let type = null;
    const covered = new Set();
    let plain = cases.length > 0;
    for (const c of cases) {
      if (c.type !== 'switch_expression_case' && c.type !== 'switch_statement_case') {
        plain = false; // a default
        break;
      }
      const pats = named(c).filter((p) => p.type === 'constant_pattern');
      if (pats.length === 0) {
        plain = false; // a wildcard, a typed or another pattern
        break;
      }
      const guarded = named(c).some((p) => p.type === 'guard');
      for (const p of pats) {
        const q = firstOfType(p, 'qualified');
        const t = q && firstOfType(q, 'type_identifier');
        const m = q && firstOfType(q, 'identifier');
        if (!t || !m || (type && type !== t.text)) {
          plain = false;
          break;
        }
        type = t.text;
        if (!guarded) covered.add(m.text);
      }
      if (!plain) break;
    }
    if (!plain || !type || !enumMembers.has(type)) continue;
    const missing = [...enumMembers.get(type)].filter((m) => !covered.has(m));
    if (missing.length) yield { node: n, type, missing };
  }
}

// Local variables declared twice in one block.
function* redeclared(tree) {
  for (const n of nodes(tree.rootNode)) {
    if (n.type !== 'block') continue;
    const seen = new Set();
    for (const c of named(n)) {
      if (c.type !== 'local_variable_declaration') continue;
      for (const d of named(c)) {
        if (d.type !== 'initialized_variable_definition') continue;
        const id = d.childForFieldName('name');
        if (!id) continue;
        if (seen.has(id.text)) yield id;
        seen.add(id.text);
      }
    }
  }
}

// The ```dart blocks of a Markdown file: { text, line } (line of the
// first code line, 1-based). A block without a top-level declaration is
// wrapped in a function so that it parses as the statements it is.
function snippets(md) {
  const out = [];
  const lines = md.split('\n');
  for (let i = 0; i < lines.length; i++) {
    if (lines[i].trim() !== '```dart') continue;
    const start = i + 1;
    let j = start;
    while (j < lines.length && lines[j].trim() !== '```') j++;
    const block = lines.slice(start, j);
    const body = block.join('\n');
    if (/^((abstract |final |sealed )?class |late |(Future<void>|void) main\()/m.test(body)) {
      out.push({ text: body, line: start + 1, offset: 0 });
    } else {
      // Its imports stay on top; the rest becomes a function's body, on
      // the same lines (the imports are blanked where they were).
      const imports = block.filter((l) => l.startsWith('import '));
      const rest = block.map((l) => (l.startsWith('import ') ? '' : l));
      out.push({
        text: `${imports.join(' ')} Future<void> snippet() async {\n${rest.join('\n')}\n}\n`,
        line: start + 1,
        offset: 1,
      });
    }
    i = j;
  }
  return out;
}

async function main() {
  const [modules, pkg, ...extra] = process.argv.slice(2);
  if (!modules || !pkg) {
    console.error('usage: check_api_calls.js MODULES_DIR PACKAGE_DIR [EXTRA.dart...]');
    return 2;
  }
  const parser = await loadParser(modules, 'check_api_calls');
  if (!parser) return 2;

  const parse = (file, text, line = 1, offset = 0) =>
    ({ file, tree: parser.parse(text), line, offset });
  const lib = dartFiles(path.join(pkg, 'lib'), []).map((f) => parse(f, fs.readFileSync(f, 'utf8')));
  const api = declarations(lib);
  const enumMembers = enums(lib);
  if (api.decls.size < 50) {
    console.error(`check_api_calls: only ${api.decls.size} declarations found in ${pkg}/lib`);
    return 2;
  }
  const users = [...lib];
  for (const f of [...dartFiles(path.join(pkg, 'test'), []),
    ...dartFiles(path.join(pkg, 'example'), []), ...extra]) {
    users.push(parse(f, fs.readFileSync(f, 'utf8')));
  }
  const readme = path.join(pkg, 'README.md');
  if (fs.existsSync(readme)) {
    for (const s of snippets(fs.readFileSync(readme, 'utf8'))) {
      users.push(parse(readme, s.text, s.line, s.offset));
    }
  }

  // Which of the package's top-level functions and classes each file can
  // name: a README example sees what `package:porter/porter.dart` exports.
  const sc = scopes(users.filter((u) => u.file !== readme), pkg);
  const libDir = path.resolve(pkg, 'lib') + path.sep;
  const porterExports = sc.exported(path.resolve(pkg, 'lib', 'porter.dart'));
  const scoped = (name) => {
    const f = sc.declaredIn.get(name);
    if (!f || !f.startsWith(libDir) || api.values.has(name)) return false;
    return (api.decls.get(name) || []).every((d) => d.top || (d.ctor && d.owner === name));
  };

  const testDir = path.resolve(pkg, 'test') + path.sep;
  let bad = 0;
  let checked = 0;
  let readsChecked = 0;
  const where = (u, node) => `${u.file}:${u.line + node.startPosition.row - u.offset}`;
  for (const u of users) {
    const vars = variableTypes(u.tree, api);
    const seen = u.file === readme ? porterExports : sc.visible(u.file);
    for (const c of calls(u.tree)) {
      // `const X(...)` needs a const constructor of the package's X (an
      // implicit constructor never is one).
      const ctors = (api.decls.get(c.name) || []).filter((d) => d.ctor);
      if (c.constCall && ctors.length && !ctors.some((d) => d.isConst)) {
        console.log(`${where(u, c.node)}: const ${c.name}(...) but no constructor ${c.name} is const`);
        bad++;
      }
      if (!c.plain || !scoped(c.name) || seen.has(c.name)) continue;
      console.log(`${where(u, c.node)}: ${c.name} is not in scope here (declared in ` +
        `${path.relative(pkg, sc.declaredIn.get(c.name))}${u.file === readme
          ? ', not exported by package:porter/porter.dart' : ', not imported'})`);
      bad++;
    }
    // parse_dart.js checks the syntax of the package's files; the README's
    // examples are checked here.
    if (u.file === readme) {
      for (const n of nodes(u.tree.rootNode)) {
        if (n.isMissing || n.type === 'ERROR') {
          console.log(`${where(u, n)}: syntax error in the example near ` +
            `'${n.text.split('\n')[0].slice(0, 40)}'`);
          bad++;
        }
      }
    }
    for (const c of calls(u.tree)) {
      // The receiver's type when it is known: a class of the package
      // named (a static call, a named constructor) or a variable of a
      // known type. Then only its members (and its supertypes') count.
      const recvType = c.recv && (api.types.has(c.recv) ? c.recv : vars.get(c.recv));
      let sigs;
      if (recvType) {
        const m = members(api, recvType, c.name, recvType === c.recv);
        if (m.found.length === 0) {
          if (m.open) continue;
          console.log(`${where(u, c.node)}: ${recvType} has no member ${c.name}`);
          bad++;
          checked++;
          continue;
        }
        sigs = m.found.map((d) => d.sig);
      } else {
        const all = api.decls.get(c.name);
        if (!all || api.values.has(c.name)) continue;
        // A static call of a class the package does not declare
        // (DynamicLibrary.open, Isolate.spawn) is not the package's.
        if (c.recv && /^[A-Z]/.test(c.recv)) continue;
        sigs = all.map((d) => d.sig);
      }
      checked++;
      if (sigs.some((s) => accepts(s, c, Boolean(recvType)))) continue;
      const used = [c.positional ? `${c.positional} positional` : '',
        c.labels.length ? `{${c.labels.join(', ')}}` : ''].filter(Boolean).join(', ');
      console.log(`${where(u, c.node)}: ${c.name}(${used}) matches no declaration of ` +
        `${c.name}: ${sigs.map(describe).join(' or ')}`);
      bad++;
    }
    // A member read on a receiver of a known type of the package
    // (`s.connections`, `r.rows`, `FileWriteFlags.atomic`): a getter,
    // field or method of it or of its supertypes must have that name, as
    // the compiler requires (a renamed getter left behind in a test or
    // the README).
    for (const r of reads(u.tree)) {
      const recvType = api.types.has(r.recv) ? r.recv : vars.get(r.recv);
      if (!recvType || OBJECT_MEMBERS.has(r.name)) continue;
      const m = members(api, recvType, r.name, recvType === r.recv, true);
      if (m.open) continue;
      readsChecked++;
      if (m.found.length) continue;
      console.log(`${where(u, r.node)}: ${recvType} has no member ${r.name}`);
      bad++;
    }
    // A stream listened to without onError: its error is an uncaught
    // error, which ends a program, and no try around the listen sees it
    // (the example's watch did this). Tests are left out: their framework
    // fails the test on an uncaught error, which is what they want.
    if (!path.resolve(u.file).startsWith(testDir)) {
      for (const c of calls(u.tree)) {
        if (c.name === 'listen' && !c.plain && !c.labels.includes('onError')) {
          console.log(`${where(u, c.node)}: listen(...) without onError: the stream's ` +
            'errors would be uncaught (give onError, or use await for in a try)');
          bad++;
        }
      }
    }
    for (const sw of partialSwitches(u.tree, enumMembers)) {
      console.log(`${where(u, sw.node)}: a switch over ${sw.type} misses ${sw.missing.join(', ')}`);
      bad++;
    }
    for (const id of redeclared(u.tree)) {
      console.log(`${where(u, id)}: ${id.text} is declared twice in one block`);
      bad++;
    }
    u.tree.delete();
  }
  if (checked < 100) {
    console.error(`check_api_calls: only ${checked} calls of the package's API found: the scan is broken`);
    return 2;
  }
  if (readsChecked < 100) {
    console.error(`check_api_calls: only ${readsChecked} member reads on the package's types found: the scan is broken`);
    return 2;
  }
  console.log(`check_api_calls: ${checked} calls and ${readsChecked} member reads of the ` +
    `package's API, ${bad} problems`);
  return bad ? 1 : 0;
}

main().then((code) => process.exit(code), (e) => {
  console.error(`check_api_calls: ${e.stack || e}`);
  process.exit(2);
});
