#!/usr/bin/env node
// Parses .dart files with the tree-sitter Dart grammar and reports every
// ERROR or MISSING node as file:line:col, so a syntax error anywhere in the
// Dart package fails the test suite even where no Dart SDK is installed.
//
// Usage: node parse_dart.js MODULES_DIR PATH...
//   MODULES_DIR  a node_modules directory holding web-tree-sitter and
//                @repomix/tree-sitter-wasms (see package.json here)
//   PATH         .dart files, or directories searched recursively
// Exit status: 0 all parsed cleanly, 1 syntax errors, 2 set-up problem.
'use strict';

const fs = require('fs');
const path = require('path');

const { loadParser } = require('./dart_parser');

// Directories that hold generated or fetched files, never package sources.
const SKIP_DIRS = new Set(['.dart_tool', 'build', 'node_modules', '.git']);

function collect(p, out) {
  const st = fs.statSync(p);
  if (st.isDirectory()) {
    for (const name of fs.readdirSync(p).sort()) {
      if (SKIP_DIRS.has(name)) continue;
      collect(path.join(p, name), out);
    }
  } else if (p.endsWith('.dart')) {
    out.push(p);
  }
}

// The text of a node, cut to one short line for the report.
function excerpt(src, node) {
  const text = src.slice(node.startIndex, node.endIndex).split('\n')[0];
  return text.length > 40 ? text.slice(0, 40) + '...' : text;
}

function problems(tree, src) {
  const found = [];
  const cursor = tree.walk();
  // Iterative depth-first walk: deep files must not overflow the stack.
  for (;;) {
    const node = cursor.currentNode;
    if (node.isMissing) {
      found.push({ node, what: `MISSING ${node.type}` });
    } else if (node.type === 'ERROR') {
      found.push({ node, what: `ERROR near '${excerpt(src, node)}'` });
    }
    if (node.hasError && cursor.gotoFirstChild()) continue;
    while (!cursor.gotoNextSibling()) {
      if (!cursor.gotoParent()) return found;
    }
  }
}

async function main() {
  const [modules, ...paths] = process.argv.slice(2);
  if (!modules || paths.length === 0) {
    console.error('usage: parse_dart.js MODULES_DIR PATH...');
    return 2;
  }
  const parser = await loadParser(modules, 'parse_dart');
  if (!parser) return 2;

  const files = [];
  for (const p of paths) collect(p, files);
  if (files.length === 0) {
    console.error(`parse_dart: no .dart files under ${paths.join(' ')}`);
    return 2;
  }
  let bad = 0;
  for (const file of files) {
    const src = fs.readFileSync(file, 'utf8');
    const tree = parser.parse(src);
    for (const { node, what } of problems(tree, src)) {
      const { row, column } = node.startPosition;
      console.log(`${file}:${row + 1}:${column + 1}: ${what}`);
      bad++;
    }
    tree.delete();
  }
  console.log(`parse_dart: ${files.length} files, ${bad} syntax errors`);
  return bad ? 1 : 0;
}

main().then((code) => process.exit(code), (e) => {
  console.error(`parse_dart: ${e.stack || e}`);
  process.exit(2);
});
