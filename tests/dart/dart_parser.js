// The tree-sitter Dart parser that parse_dart.js and check_api_calls.js
// share: web-tree-sitter with the Dart grammar of
// @repomix/tree-sitter-wasms, from a node_modules directory that
// dart-syntax.sh setup filled.
'use strict';

// A ready parser, or null after saying on stderr (as [who]) why there is
// none: the caller then exits with status 2, a set-up problem.
async function loadParser(modules, who) {
  let TreeSitter;
  let wasm;
  try {
    TreeSitter = require(require.resolve('web-tree-sitter', { paths: [modules] }));
    wasm = require.resolve('@repomix/tree-sitter-wasms/out/tree-sitter-dart.wasm',
      { paths: [modules] });
  } catch (e) {
    console.error(`${who}: the parser is not installed under ${modules}: ${e.message}`);
    return null;
  }
  const { Parser, Language } = TreeSitter;
  await Parser.init();
  const parser = new Parser();
  parser.setLanguage(await Language.load(wasm));
  return parser;
}

module.exports = { loadParser };
