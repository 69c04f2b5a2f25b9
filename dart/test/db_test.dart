// Tests of the PostgreSQL API against a real porterd and a real
// PostgreSQL; see README.md ("Running the tests") for how to start them.
import 'dart:async';
import 'dart:io' show sleep;
import 'dart:isolate';
import 'dart:typed_data';

import 'package:porter/porter.dart';
import 'package:test/test.dart';

import 'support/daemon.dart';

// Top-level so that closures sent to other isolates capture nothing
// unsendable (see porter_test.dart).
late TestDaemon daemon;
late Porter porter;
late String conninfo;
late PorterPool pool;

/// A table name of this run, so runs against a shared server never meet.
final String table = 'dart_t_${DateTime.now().microsecondsSinceEpoch}';

int count(DbResult r) => r.rows.single.getInt(0);

/// Runs [sql] on [session] from a new isolate (a new thread's connection).
Future<DbResult> queryInIsolate(DbSession session, String sql,
        [List<Object?> params = const []]) =>
    Isolate.run(() {
      final p = Porter();
      try {
        return p.query(sql, session: session, params: params);
      } finally {
        p.disconnectThread();
      }
    });

/// 25 pooled queries from a new isolate; returns the sum of the answers.
/// Top-level: globals are per isolate, so [ci] is passed in.
Future<int> sumInIsolate(String ci, int i) => Isolate.run(() {
      final p = Porter();
      var sum = 0;
      for (var j = 0; j < 25; j++) {
        final r = p.query('SELECT \$1::int * 100 + \$2::int',
            conninfo: ci, params: [i, j]);
        sum += r.rows.single.getInt(0);
      }
      p.disconnectThread();
      return sum;
    });

/// Queries of PostgreSQL whose text holds [marker] still running, once
/// settled on 0 (a cancel takes a moment to reach the server) or after 5 s.
int awaitActive(String marker) {
  final until = DateTime.now().add(const Duration(seconds: 5));
  for (;;) {
    final n = porter
        .query(
            "SELECT count(*) FROM pg_stat_activity WHERE state = 'active' "
            'AND query LIKE \$1 AND pid <> pg_backend_pid()',
            conninfo: conninfo,
            params: ['%$marker%'])
        .rows
        .single
        .getInt(0);
    if (n == 0 || DateTime.now().isAfter(until)) return n;
    sleep(const Duration(milliseconds: 20));
  }
}

void main() {
  setUpAll(() async {
    daemon = await TestDaemon.start();
    porter = Porter();
    conninfo = testConninfo();
    pool = await PorterPool.spawn(size: 4, reset: false);
    porter.query('CREATE TABLE $table (k int PRIMARY KEY, t text, b bytea)',
        conninfo: conninfo);
  });

  tearDownAll(() async {
    porter.query('DROP TABLE IF EXISTS $table', conninfo: conninfo);
    await pool.close();
    porter.disconnectThread();
    await daemon.stop();
  });

  group('db sync', () {
    test('parameters, NULLs, binary values, columns and tags', () {
      final s = porter.dbOpen(conninfo);
      try {
        final blob = Uint8List.fromList([0, 1, 2, 0, 255, 0]);
        final ins = porter.query(
            'INSERT INTO $table VALUES (\$1, \$2, \$3), (\$4, NULL, NULL)',
            session: s,
            params: [1, 'one', blob, 2]);
        expect(ins.commandTag, 'INSERT 0 2');
        expect(ins.affectedRows, 2);
        final r = porter.query('SELECT k, t, b FROM $table WHERE k <= 2 ORDER BY k',
            session: s);
        expect(r.columns.map((c) => c.name), ['k', 't', 'b']);
        expect(r.columns.map((c) => c.typeOid), [23, 25, byteaOid]);
        expect(r.rows[0].values, [1, 'one', blob]);
        expect(r.rows[1].values, [2, null, null]);
        expect(r.rows[0].getBytes('b'), blob);
        expect(r.maps[0]['t'], 'one');
        final multi = porter.query('SELECT 1; SELECT 2, 3', session: s);
        expect(multi.parts.length, 2);
        expect(multi.parts.first.rows.single.values, [1]);
        expect(multi.rows.single.values, [2, 3]);
        porter.query('DELETE FROM $table WHERE k <= 2', session: s);
      } finally {
        porter.dbClose(s);
      }
    });

    test('SQL errors carry SQLSTATE, detail and hint', () {
      final e = throwsA(isA<PorterDbException>()
          .having((e) => e.code, 'code', porter_error.PORTER_E_DB)
          .having((e) => e.sqlstate, 'sqlstate', 'P0001')
          .having((e) => e.detail, 'detail', 'the detail')
          .having((e) => e.hint, 'hint', 'try again'));
      expect(
          () => porter.query(
              "DO \$\$ BEGIN RAISE EXCEPTION 'boom' USING DETAIL = 'the detail', "
              "HINT = 'try again'; END \$\$",
              conninfo: conninfo),
          e);
      expect(
          () => porter.query('SELECT 1 / 0', conninfo: conninfo),
          throwsA(isA<PorterDbException>()
              .having((e) => e.sqlstate, 'sqlstate', '22012')));
      expect(() => porter.dbOpen('host=/nonexistent port=1'),
          throwsA(isA<PorterDbException>().having(
              (e) => e.code, 'code', porter_error.PORTER_E_DB_CONNECT)));
      expect(() => porter.query('SELECT 1', session: const DbSession(12345)),
          throwsA(isA<PorterDbException>().having(
              (e) => e.code, 'code', porter_error.PORTER_E_DB_SESSION)));
    });

    test('notices come with the result, each placed among its parts', () {
      final r = porter.query(
          "SELECT 1; DO \$\$ BEGIN RAISE NOTICE 'hello %', 42; END \$\$; "
          'DROP TABLE IF EXISTS dart_no_such_table',
          conninfo: conninfo);
      expect(r.parts.length, 3);
      expect(r.notices.map((n) => '${n.severity} ${n.message}'), [
        'NOTICE hello 42',
        'NOTICE table "dart_no_such_table" does not exist, skipping'
      ]);
      // In order among the parts, as libpq parsed them.
      final after = r.notices.map((n) => n.afterParts).toList();
      expect(after.first <= after.last && after.last <= 3, isTrue);
      expect(r.noticesDropped, 0);
      // A WARNING with its fields.
      final w = porter.query(
          "DO \$\$ BEGIN RAISE WARNING 'careful' USING DETAIL = 'd', "
          "HINT = 'h', ERRCODE = '01007'; END \$\$",
          conninfo: conninfo);
      final n = w.notices.single;
      expect([n.severity, n.sqlstate, n.message, n.detail, n.hint],
          ['WARNING', '01007', 'careful', 'd', 'h']);
      expect(n.context, contains('PL/pgSQL'));
    });

    test('error fields: position, context, the object involved, and the '
        'results before the failing statement', () {
      // The second FROM is the error (psql: LINE 2, the caret under it).
      const sql = 'SELECT 1,\n  2 FROM FROM';
      try {
        porter.query(sql, conninfo: conninfo);
        fail('no error');
      } on PorterDbException catch (e) {
        expect(e.sqlstate, '42601');
        expect(e.severity, 'ERROR');
        expect(e.position, sql.lastIndexOf('FROM') + 1);
        expect(e.describe(sql), 'ERROR:  syntax error at or near "FROM"\n'
            'LINE 2:   2 FROM FROM\n'
            '${' ' * 17}^');
      }
      final s = porter.dbOpen(conninfo);
      try {
        porter.query('INSERT INTO $table (k, t) VALUES (1000, \'x\')',
            session: s);
        try {
          porter.query(
              "CREATE TEMP TABLE dart_tmp (k int); "
              "DO \$\$ BEGIN RAISE NOTICE 'before'; END \$\$; "
              "INSERT INTO $table (k, t) VALUES (1000, 'again')",
              session: s);
          fail('no error');
        } on PorterDbException catch (e) {
          expect(e.sqlstate, '23505');
          expect(e.table, table);
          expect(e.constraint, '${table}_pkey');
          expect(e.schema, isNotEmpty);
          expect(e.detail, 'Key (k)=(1000) already exists.');
          expect(e.partial!.parts.map((p) => p.commandTag),
              ['CREATE TABLE', 'DO']);
          expect(e.partial!.notices.single.message, 'before');
        }
        try {
          porter.query(
              'CREATE FUNCTION pg_temp.dart_div(int) RETURNS int '
              'LANGUAGE plpgsql AS \$\$ BEGIN RETURN 1 / \$1; END \$\$; '
              'SELECT pg_temp.dart_div(0)',
              session: s);
          fail('no error');
        } on PorterDbException catch (e) {
          expect(e.sqlstate, '22012');
          expect(e.context, contains('dart_div(integer) line 1 at RETURN'));
        }
        try {
          porter.query('INSERT INTO $table (k, t) VALUES (NULL, \'x\')',
              session: s);
          fail('no error');
        } on PorterDbException catch (e) {
          expect(e.sqlstate, '23502');
          expect(e.column, 'k');
        }
      } finally {
        porter.query('DELETE FROM $table WHERE k = 1000', session: s);
        porter.dbClose(s);
      }
    });

    test('a timeout cancels the query and keeps the session', () {
      final s = porter.dbOpen(conninfo);
      try {
        final sw = Stopwatch()..start();
        expect(
            () => porter.query('SELECT pg_sleep(10)',
                session: s, timeout: const Duration(milliseconds: 300)),
            throwsA(isA<PorterTimeoutException>()));
        expect(sw.elapsed, lessThan(const Duration(seconds: 2)));
        expect(porter.query('SELECT 5', session: s).rows.single.values, [5]);
      } finally {
        porter.dbClose(s);
      }
    });

    test('a cursor streams chunk by chunk', () {
      var rows = 0;
      var chunks = 0;
      porter.queryEach('SELECT g FROM generate_series(1, 5000) g', (chunk) {
        expect(chunk.length, lessThanOrEqualTo(400));
        for (final row in chunk) {
          expect(row.getInt('g'), ++rows);
        }
        chunks++;
        return true;
      }, conninfo: conninfo, chunkRows: 400);
      expect(rows, 5000);
      expect(chunks, greaterThanOrEqualTo(13));
    });

    test('stopping a chunk loop early cancels the query in the server', () {
      // The old queryChunks was a sync* generator: `break` never ran its
      // finally, so the cursor (and the query) stayed open.
      final marker = 'dart_each_${DateTime.now().microsecondsSinceEpoch}';
      final n = porter.queryEach(
          'SELECT g, pg_sleep(0.001) AS $marker FROM generate_series(1, 1000000) g',
          (chunk) => false,
          conninfo: conninfo,
          chunkRows: 100);
      expect(n, 1);
      expect(awaitActive(marker), 0);
    });
  });

  group('db across isolates', () {
    test('one session, a transaction spanning four isolates', () async {
      final s = porter.dbOpen(conninfo);
      try {
        await queryInIsolate(s, 'CREATE TEMP TABLE only_here (x int)');
        await queryInIsolate(s, 'BEGIN');
        await Future.wait([
          for (var k = 10; k < 18; k++)
            queryInIsolate(s, 'INSERT INTO $table VALUES (\$1, \$2, NULL)',
                [k, 'from isolate $k'])
        ]);
        await queryInIsolate(s, 'INSERT INTO only_here VALUES (1)');
        // Not committed: another connection sees nothing.
        expect(
            count(porter.query(
                'SELECT count(*) FROM $table WHERE k BETWEEN 10 AND 17',
                conninfo: conninfo)),
            0);
        // The pool's workers (other threads again) use the same session.
        expect(
            count(await pool.query('SELECT count(*) FROM only_here',
                session: s)),
            1);
        await pool.query('COMMIT', session: s);
        expect(
            count(porter.query(
                'SELECT count(*) FROM $table WHERE k BETWEEN 10 AND 17',
                conninfo: conninfo)),
            8);
      } finally {
        porter.dbClose(s);
      }
    });

    test('many isolates query at once', () async {
      final results =
          await Future.wait([for (var i = 0; i < 8; i++) sumInIsolate(conninfo, i)]);
      for (var i = 0; i < 8; i++) {
        expect(results[i], 25 * 100 * i + 300);
      }
    });
  });

  group('db pool', () {
    test('futures for open, query and close; errors cross intact', () async {
      final s = await pool.dbOpen(conninfo);
      final r = await pool.query('SELECT \$1::text || \$2::text',
          session: s, params: ['a', null]);
      expect(r.rows.single.values, [null]);
      await expectLater(
          pool.query('SELECT nope', session: s),
          throwsA(isA<PorterDbException>()
              .having((e) => e.sqlstate, 'sqlstate', '42703')));
      await pool.dbClose(s);
      await expectLater(pool.query('SELECT 1', session: s),
          throwsA(isA<PorterDbException>()));
    });

    test('SQL or a conninfo holding NUL is refused, never cut at it',
        () async {
      // C would see 'SELECT 1' alone and run it.
      final refused = throwsA(isA<ArgumentError>());
      expect(() => porter.query('SELECT 1\u0000; SELECT 2', conninfo: conninfo),
          refused);
      expect(() => porter.dbOpen('$conninfo\u0000 user=other'), refused);
      await expectLater(
          pool.query('SELECT 1\u0000; SELECT 2', conninfo: conninfo), refused);
      await expectLater(
          pool.queryStream('SELECT 1\u0000', conninfo: conninfo).first,
          refused);
    });

    test('a CancelToken stops a running query in the server', () async {
      final token = PorterCancelToken();
      final marker = 'dart_cancel_${DateTime.now().microsecondsSinceEpoch}';
      final sw = Stopwatch()..start();
      final f = pool.query('SELECT pg_sleep(30) AS $marker',
          conninfo: conninfo,
          timeout: const Duration(seconds: 20),
          cancel: token);
      await Future<void>.delayed(const Duration(milliseconds: 300));
      token.cancel();
      await expectLater(f, throwsA(isA<PorterCancelledException>()));
      expect(sw.elapsed, lessThan(const Duration(seconds: 3)));
      // The cancel reached the server: the query no longer runs there
      // (the old test passed whether or not it did).
      expect(awaitActive(marker), 0);
      final r = await pool.query('SELECT 1',
          conninfo: conninfo, timeout: const Duration(seconds: 5));
      expect(r.rows.single.values, [1]);
    });

    test('typed parameters come back as the same Dart values', () async {
      final t = DateTime.utc(2024, 2, 29, 13, 14, 15, 123, 456);
      final blob = Uint8List.fromList([0, 1, 254, 255]);
      final r = await pool.query(
          r'SELECT $1 AS i, $2 AS d, $3 AS b, $4 AS t, $5 AS y, $6 AS a, '
          r'$7::jsonb AS j, $8 AS n',
          conninfo: conninfo,
          params: [1 << 40, 2.5, true, t, blob, [1, null, 3], {'k': [1, 'v']}, null]);
      final row = r.rows.single;
      expect(row.getInt('i'), 1 << 40);
      expect(row.getDouble('d'), 2.5);
      expect(row.getBool('b'), isTrue);
      expect(row.getDateTime('t'), t);
      expect(row.getBytes('y'), blob);
      expect(row.get<List<Object?>>('a'), [1, null, 3]);
      expect(row['j'], {'k': [1, 'v']});
      expect(row.getOrNull<String>('n'), isNull);
    });

    test('transaction commits, or rolls back on an exception or a cancel',
        () async {
      Future<int> rows() async => count(await pool.query(
          'SELECT count(*) FROM $table WHERE k BETWEEN 500 AND 599',
          conninfo: conninfo));
      final v = await pool.transaction((tx) async {
        await tx.query('INSERT INTO $table VALUES (500, \'a\', NULL)');
        expect(await rows(), 0); // not visible outside before COMMIT
        return 42;
      }, conninfo: conninfo);
      expect(v, 42);
      expect(await rows(), 1);
      await expectLater(
          pool.transaction((tx) async {
            await tx.query('INSERT INTO $table VALUES (501, \'b\', NULL)');
            throw StateError('boom');
          }, conninfo: conninfo),
          throwsStateError);
      expect(await rows(), 1);
      final token = PorterCancelToken();
      await expectLater(
          pool.transaction((tx) async {
            await tx.query('INSERT INTO $table VALUES (502, \'c\', NULL)');
            token.cancel();
            await tx.query('SELECT 1');
          }, conninfo: conninfo, cancel: token),
          throwsA(isA<PorterCancelledException>()));
      expect(await rows(), 1);
      // Each transaction opened and closed a session of its own.
      expect(pool.openSessions, isEmpty);
    });

    test('close() closes the sessions the pool opened', () async {
      final p = await PorterPool.spawn(size: 1, reset: false);
      final s = await p.dbOpen(conninfo);
      expect(p.openSessions, {s});
      await p.close();
      expect(() => porter.query('SELECT 1', session: s),
          throwsA(isA<PorterDbException>().having(
              (e) => e.code, 'code', porter_error.PORTER_E_DB_SESSION)));
    });

    test('queryStream delivers every row in order', () async {
      var n = 0;
      var chunks = 0;
      await for (final chunk in pool.queryStream(
          'SELECT g, md5(g::text) FROM generate_series(1, 20000) g',
          conninfo: conninfo,
          chunkRows: 1000)) {
        expect(chunk.length, lessThanOrEqualTo(1000));
        for (final row in chunk) {
          expect(row[0], ++n);
        }
        chunks++;
      }
      expect(n, 20000);
      expect(chunks, greaterThanOrEqualTo(20));
    });

    test('queryStream on a session, pulled by whichever worker is free',
        () async {
      final s = await pool.dbOpen(conninfo);
      try {
        // Other calls keep the workers busy while the stream is read
        // (pooled ones: a call on the session itself would wait until
        // the stream ends).
        final noise = [
          for (var i = 0; i < 40; i++) pool.query('SELECT $i', conninfo: conninfo)
        ];
        final rows = await pool
            .queryStream('SELECT g FROM generate_series(1, 3000) g',
                session: s, chunkRows: 100)
            .expand((c) => c)
            .toList();
        expect(rows.length, 3000);
        expect(rows.last.values, [3000]);
        await Future.wait(noise);
      } finally {
        await pool.dbClose(s);
      }
    });

    test('a paused stream pulls nothing more', () async {
      final chunks = <int>[];
      late StreamSubscription<List<Row>> sub;
      final done = Completer<void>();
      sub = pool
          .queryStream('SELECT g FROM generate_series(1, 1000) g',
              conninfo: conninfo, chunkRows: 100)
          .listen((c) {
        chunks.add(c.length);
        if (chunks.length == 1) sub.pause();
      }, onDone: done.complete);
      while (chunks.isEmpty) {
        await Future<void>.delayed(const Duration(milliseconds: 10));
      }
      await Future<void>.delayed(const Duration(milliseconds: 300));
      // At most the chunk already being pulled when the pause came.
      expect(chunks.length, lessThanOrEqualTo(2));
      sub.resume();
      await done.future;
      expect(chunks.fold<int>(0, (a, b) => a + b), 1000);
    });

    test('cancelling the subscription closes the cursor', () async {
      final s = await pool.dbOpen(conninfo);
      try {
        final first = await pool
            .queryStream('SELECT g FROM generate_series(1, 10000000) g',
                session: s, chunkRows: 1000)
            .first;
        expect(first.length, 1000);
        // The abandoned query was cancelled: the session answers at once.
        final r = await pool.query('SELECT 7',
            session: s, timeout: const Duration(seconds: 3));
        expect(r.rows.single.values, [7]);
      } finally {
        await pool.dbClose(s);
      }
    });

    test('a CancelToken ends a stream with PorterCancelledException',
        () async {
      final token = PorterCancelToken();
      final stream = pool.queryStream(
          'SELECT g, pg_sleep(0.01) FROM generate_series(1, 100000) g',
          conninfo: conninfo,
          chunkRows: 10,
          timeout: const Duration(seconds: 10),
          cancel: token);
      var got = 0;
      final f = stream.forEach((c) {
        got += c.length;
        if (got >= 20) token.cancel();
      });
      await expectLater(f, throwsA(isA<PorterCancelledException>()));
    });

    test('an SQL error mid-stream ends the stream with it', () async {
      final f = pool
          .queryStream('SELECT 1 / (g - 950) FROM generate_series(1, 2000) g',
              conninfo: conninfo, chunkRows: 100)
          .drain<void>();
      await expectLater(
          f,
          throwsA(isA<PorterDbException>()
              .having((e) => e.sqlstate, 'sqlstate', '22012')));
    });

    test('queryStream hands each chunk\'s notices to onNotice', () async {
      final s = await pool.dbOpen(conninfo);
      try {
        await pool.query(
            'CREATE FUNCTION pg_temp.dart_noisy(int) RETURNS int '
            "LANGUAGE plpgsql AS \$\$ BEGIN RAISE NOTICE 'row %', \$1; "
            'RETURN \$1; END \$\$',
            session: s);
        final seen = <String>[];
        var rows = 0;
        await for (final chunk in pool.queryStream(
            'SELECT pg_temp.dart_noisy(g) FROM generate_series(1, 5) g',
            session: s,
            chunkRows: 2,
            onNotice: (n) => seen.add(n.message))) {
          rows += chunk.length;
        }
        expect(rows, 5);
        expect(seen, ['row 1', 'row 2', 'row 3', 'row 4', 'row 5']);
      } finally {
        await pool.dbClose(s);
      }
    });

    test('a stream times out per chunk', () async {
      final f = pool
          .queryStream('SELECT pg_sleep(5)',
              conninfo: conninfo,
              chunkRows: 1,
              timeout: const Duration(milliseconds: 300))
          .drain<void>();
      await expectLater(f, throwsA(isA<PorterTimeoutException>()));
    });
  });
}
