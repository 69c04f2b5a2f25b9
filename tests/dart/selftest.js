#!/usr/bin/env node
// Proves that parse_dart.js fails when it should: deliberately broken files
// must be reported at the right file:line:col with exit status 1, valid
// Dart 3 must pass, and an empty file set is a set-up error, not a pass.
//
// Usage: node selftest.js MODULES_DIR
'use strict';

const { spawnSync } = require('child_process');
const path = require('path');

const modules = process.argv[2];
const checker = path.join(__dirname, 'parse_dart.js');
const fixtures = path.join(__dirname, 'fixtures');
let failed = 0;

function run(...paths) {
  const r = spawnSync(process.execPath, [checker, modules, ...paths], { encoding: 'utf8' });
  return { status: r.status, out: r.stdout + r.stderr };
}

function expect(what, ok, out) {
  console.log(`${ok ? 'PASS' : 'FAIL'} ${what}`);
  if (!ok) {
    failed++;
    console.log(out.replace(/^/gm, '    '));
  }
}

const cases = [
  { file: 'good.dart', status: 0, report: [] },
  { file: 'broken_missing.dart', status: 1, report: ['broken_missing.dart:3:24: MISSING ;'] },
  {
    file: 'broken_error.dart',
    status: 1,
    report: ['broken_error.dart:2:1: ERROR', 'broken_error.dart:6:7: ERROR'],
  },
];

for (const c of cases) {
  const r = run(path.join(fixtures, c.file));
  expect(`${c.file}: exit status ${c.status}`, r.status === c.status, r.out);
  for (const line of c.report) {
    expect(`${c.file}: reports ${line}`, r.out.includes(path.join(fixtures, line)), r.out);
  }
  if (c.status === 0) {
    expect(`${c.file}: reports nothing`, !/: (ERROR|MISSING)/.test(r.out), r.out);
  }
}

// A directory: every broken file is found, the good one is not reported.
const dir = run(fixtures);
expect('fixtures/: exit status 1', dir.status === 1, dir.out);
expect('fixtures/: both broken files reported',
  dir.out.includes('broken_missing.dart:') && dir.out.includes('broken_error.dart:'), dir.out);
expect('fixtures/: good.dart not reported', !dir.out.includes('good.dart:'), dir.out);
expect('fixtures/: 3 files, 4 syntax errors', dir.out.includes('3 files, 4 syntax errors'), dir.out);

// Nothing to check must not pass silently.
const none = run(path.join(__dirname, 'package.json'));
expect('a path without .dart files: exit status 2', none.status === 2, none.out);

console.log(failed ? `${failed} checks failed` : 'all checks passed');
process.exit(failed ? 1 : 0);
