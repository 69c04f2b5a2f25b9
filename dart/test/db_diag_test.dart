// Pure unit tests of what the server says besides rows: notices and the
// fields of an error, built from fixed field values (no daemon, no
// database, no native library). What porterd and libporter hand over for
// each field is checked against a real server by tests/ffi
// (test_isolates.py, test_db_notices_and_error_fields).
import 'package:porter/porter.dart';
import 'package:porter/src/db_diag.dart' show caretLine;
import 'package:test/test.dart';

/// A field reader over fixed values by diagnostic letter.
DbFieldReader fields(Map<String, String> byLetter) =>
    (int f) => byLetter[String.fromCharCode(f)] ?? '';

void main() {
  group('notices', () {
    test('every field, and psql\'s layout', () {
      final n = DbNotice.fromFields(
          fields({
            'S': 'WARNING',
            'C': '01000',
            'M': 'careful',
            'D': 'the detail',
            'H': 'a hint',
            'W': 'PL/pgSQL function f() line 3 at RAISE',
          }),
          afterParts: 2);
      expect(n.severity, 'WARNING');
      expect(n.sqlstate, '01000');
      expect(n.message, 'careful');
      expect(n.detail, 'the detail');
      expect(n.hint, 'a hint');
      expect(n.context, 'PL/pgSQL function f() line 3 at RAISE');
      expect(n.afterParts, 2);
      expect('$n', 'WARNING:  careful\nDETAIL:  the detail\nHINT:  a hint');
    });

    test('absent fields are empty', () {
      final n = DbNotice.fromFields(fields({'S': 'NOTICE', 'M': 'hi'}));
      expect(n.detail, '');
      expect(n.context, '');
      expect('$n', 'NOTICE:  hi');
    });

    test('a result carries them, with the count porterd dropped', () {
      final r = DbResult(const [],
          notices: const [DbNotice(severity: 'NOTICE', message: 'x')],
          noticesDropped: 7);
      expect(r.notices.single.message, 'x');
      expect(r.noticesDropped, 7);
      expect(DbResult(const []).notices, isEmpty);
    });
  });

  group('error fields', () {
    test('every field of a constraint violation', () {
      final e = PorterDbException.fromFields(
          -20,
          'PORTER_E_DB',
          'duplicate key value violates unique constraint "t_pkey"',
          fields({
            'S': 'ERROR',
            'C': '23505',
            'D': 'Key (id)=(1) already exists.',
            's': 'public',
            't': 't',
            'n': 't_pkey',
          }));
      expect(e.code, -20);
      expect(e.sqlstate, '23505');
      expect(e.severity, 'ERROR');
      expect(e.detail, 'Key (id)=(1) already exists.');
      expect(e.schema, 'public');
      expect(e.table, 't');
      expect(e.constraint, 't_pkey');
      expect(e.column, '');
      expect(e.dataType, '');
      expect(e.position, isNull);
      expect(e.partial, isNull);
    });

    test('positions are numbers; anything else is no position', () {
      PorterDbException at(String p, [String ip = '']) =>
          PorterDbException.fromFields(-20, 'PORTER_E_DB', 'm',
              fields({'P': p, 'p': ip, 'q': ip.isEmpty ? '' : 'SELECT 1/0'}));
      expect(at('10').position, 10);
      expect(at('').position, isNull);
      expect(at('x').position, isNull);
      expect(at('0').position, isNull);
      expect(at('-3').position, isNull);
      final inner = at('', '8');
      expect(inner.internalPosition, 8);
      expect(inner.internalQuery, 'SELECT 1/0');
    });

    test('the results before the failure come along', () {
      final part = DbResultPart(DbColumns(const []), const [], 0, 'CREATE TABLE');
      final e = PorterDbException.fromFields(
          -20, 'PORTER_E_DB', 'm', fields({'C': '22012'}),
          partial: DbResult([part],
              notices: const [DbNotice(severity: 'NOTICE', message: 'n')]));
      expect(e.partial!.parts.single.commandTag, 'CREATE TABLE');
      expect(e.partial!.notices.single.message, 'n');
    });

    test('toString names the SQLSTATE, position and context', () {
      final e = PorterDbException.fromFields(-20, 'PORTER_E_DB', 'boom',
          fields({'C': '42601', 'P': '10', 'W': 'SQL function "f"'}));
      expect(
          '$e',
          'PorterDbException(PORTER_E_DB -20 SQLSTATE 42601): boom '
              '(at character 10)\nCONTEXT: SQL function "f"');
    });
  });

  group('psql layout of an error', () {
    test('LINE and a caret under the position', () {
      final e = PorterDbException.fromFields(
          -20,
          'PORTER_E_DB',
          'syntax error at or near "FRM"',
          fields({'S': 'ERROR', 'C': '42601', 'P': '10', 'H': 'h'}));
      expect(
          e.describe('SELECT * FRM t'),
          'ERROR:  syntax error at or near "FRM"\n'
          'LINE 1: SELECT * FRM t\n'
          '                 ^\n'
          'HINT:  h');
    });

    test('the line that holds the position, counted in code points', () {
      // An emoji is one character for PostgreSQL (and two UTF-16 units
      // for Dart): the caret must still land under "oops".
      const sql = "SELECT 1,\n  '\u{1F600}' oops";
      final pos = sql.runes.toList().indexOf('o'.codeUnitAt(0)) + 1;
      expect(caretLine(sql, pos),
          "LINE 2:   '\u{1F600}' oops\n" '${' ' * 14}^');
    });

    test('tabs stay tabs so the caret lines up', () {
      expect(caretLine('\tSELECT x', 9), 'LINE 1: \tSELECT x\n${' ' * 8}\t       ^');
    });

    test('no position, or one past the end: no LINE', () {
      expect(caretLine('SELECT 1', null), isNull);
      expect(caretLine('SELECT 1', 99), isNull);
      expect(caretLine('SELECT 1', 9), 'LINE 1: SELECT 1\n${' ' * 16}^');
      final e = PorterDbException.fromFields(
          -20, 'PORTER_E_DB', 'm', fields({'S': 'FATAL', 'W': 'c'}));
      expect(e.describe('SELECT 1'), 'FATAL:  m\nCONTEXT:  c');
    });
  });
}
