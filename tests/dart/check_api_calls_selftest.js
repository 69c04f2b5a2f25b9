#!/usr/bin/env node
// Proves that check_api_calls.js fails when it should: every call of
// api_fixtures/bad.dart that a Dart compiler would refuse is reported at
// its line, with exit status 1, and api_fixtures/good.dart (calls a
// compiler accepts, SDK calls named like the package's among them)
// passes, checked against the package's own declarations.
//
// Usage: node check_api_calls_selftest.js MODULES_DIR PACKAGE_DIR
'use strict';

const { spawnSync } = require('child_process');
const path = require('path');

const [modules, pkg] = process.argv.slice(2);
const checker = path.join(__dirname, 'check_api_calls.js');
const fixtures = path.join(__dirname, 'api_fixtures');
let failed = 0;

function run(extra) {
  const r = spawnSync(process.execPath, [checker, modules, pkg, extra], { encoding: 'utf8' });
  return { status: r.status, out: r.stdout + r.stderr };
}

function expect(what, ok, out) {
  console.log(`${ok ? 'PASS' : 'FAIL'} ${what}`);
  if (!ok) {
    failed++;
    console.log(out.replace(/^/gm, '    '));
  }
}

// Line of bad.dart: what is wrong there.
const bad = {
  10: 'a misspelt named argument',
  11: "PorterPool's named argument on a Porter (its type known from the declaration)",
  12: 'a named argument nothing takes',
  13: 'a misspelt named argument of a static method',
  14: 'a misspelt named argument of a const constructor',
  15: 'a misspelt named argument in a cascade',
  16: 'a required named argument left out',
  17: 'a positional argument too many',
  18: 'a positional argument too few',
  19: 'a member the type does not have',
  21: 'a local variable declared twice in one block',
  22: 'a named argument on a variable typed by its initialiser',
  23: 'a function package:porter/porter.dart does not export',
  24: 'const on a class whose only constructor is the implicit one',
  25: 'a switch over an enum that leaves a constant out',
  26: 'a stream listened to without onError',
  28: 'a getter the type lacks, on a variable typed by the method it was initialised from',
  29: 'a static member the class lacks',
  30: 'a getter the type lacks, on a variable typed by an await',
};

const b = run(path.join(fixtures, 'bad.dart'));
expect('bad.dart: exit status 1', b.status === 1, b.out);
for (const [line, what] of Object.entries(bad)) {
  expect(`bad.dart:${line}: ${what}`, b.out.includes(`bad.dart:${line}:`), b.out);
}
const extra = b.out.split('\n').filter((l) => /bad\.dart:\d+:/.test(l) &&
  !(l.match(/bad\.dart:(\d+):/)[1] in bad));
expect('bad.dart: nothing else reported', extra.length === 0, extra.join('\n'));

const g = run(path.join(fixtures, 'good.dart'));
expect('good.dart: exit status 0', g.status === 0, g.out);
expect('good.dart: nothing reported', !g.out.includes('good.dart:'), g.out);

console.log(failed ? `${failed} checks failed` : 'all checks passed');
process.exit(failed ? 1 : 0);
