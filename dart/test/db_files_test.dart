// Tests of the PostgreSQL and file APIs against a real porterd and a real
// PostgreSQL; see README.md ("Running the tests") for how to start them.
import 'dart:async';
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
final String? root = testFileRoot;

/// A table name of this run, so runs against a shared server never meet.
final String table = 'dart_t_${DateTime.now().microsecondsSinceEpoch}';

int count(DbResult r) => int.parse(r.rows.single.single as String);

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
        sum += int.parse(r.rows.single.single as String);
      }
      p.disconnectThread();
      return sum;
    });

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
        expect(r.rows[0], ['1', 'one', blob]);
        expect(r.rows[1], ['2', null, null]);
        expect(r.maps[0]['t'], 'one');
        final multi = porter.query('SELECT 1; SELECT 2, 3', session: s);
        expect(multi.parts.length, 2);
        expect(multi.parts.first.rows, [
          ['1']
        ]);
        expect(multi.rows, [
          ['2', '3']
        ]);
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

    test('a timeout cancels the query and keeps the session', () {
      final s = porter.dbOpen(conninfo);
      try {
        final sw = Stopwatch()..start();
        expect(
            () => porter.query('SELECT pg_sleep(10)',
                session: s, timeout: const Duration(milliseconds: 300)),
            throwsA(isA<PorterTimeoutException>()));
        expect(sw.elapsed, lessThan(const Duration(seconds: 2)));
        expect(porter.query('SELECT 5', session: s).rows, [
          ['5']
        ]);
      } finally {
        porter.dbClose(s);
      }
    });

    test('a cursor streams chunk by chunk', () {
      var rows = 0;
      var chunks = 0;
      for (final chunk in porter.queryChunks(
          'SELECT g FROM generate_series(1, 5000) g',
          conninfo: conninfo,
          chunkRows: 400)) {
        expect(chunk.length, lessThanOrEqualTo(400));
        for (final row in chunk) {
          expect(row.single, '${++rows}');
        }
        chunks++;
      }
      expect(rows, 5000);
      expect(chunks, greaterThanOrEqualTo(13));
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
      expect(r.rows, [
        [null]
      ]);
      await expectLater(
          pool.query('SELECT nope', session: s),
          throwsA(isA<PorterDbException>()
              .having((e) => e.sqlstate, 'sqlstate', '42703')));
      await pool.dbClose(s);
      await expectLater(pool.query('SELECT 1', session: s),
          throwsA(isA<PorterDbException>()));
    });

    test('a CancelToken stops a running query in the server', () async {
      final token = CancelToken();
      final sw = Stopwatch()..start();
      final f = pool.query('SELECT pg_sleep(30)',
          conninfo: conninfo,
          timeout: const Duration(seconds: 20),
          cancel: token);
      await Future<void>.delayed(const Duration(milliseconds: 300));
      token.cancel();
      await expectLater(f, throwsA(isA<PorterCancelledException>()));
      expect(sw.elapsed, lessThan(const Duration(seconds: 3)));
      // The worker is free again soon: the daemon stopped the query.
      final r = await pool.query('SELECT 1',
          conninfo: conninfo, timeout: const Duration(seconds: 5));
      expect(r.rows, [
        ['1']
      ]);
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
          expect(row[0], '${++n}');
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
        expect(rows.last, ['3000']);
        await Future.wait(noise);
      } finally {
        await pool.dbClose(s);
      }
    });

    test('a paused stream pulls nothing more', () async {
      final chunks = <int>[];
      late StreamSubscription<List<List<Object?>>> sub;
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
        expect(r.rows, [
          ['7']
        ]);
      } finally {
        await pool.dbClose(s);
      }
    });

    test('a CancelToken ends a stream with PorterCancelledException',
        () async {
      final token = CancelToken();
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

  group('files', () {
    final data = Uint8List.fromList(
        [for (var i = 0; i < 70000; i++) i % 7 == 0 ? 0 : i & 0xff]);

    test('sync write, read, stat, list and delete', () {
      porter.writeFile('a.bin', data, root: root);
      expect(porter.readFile('a.bin', root: root), data);
      expect(porter.readFile('a.bin', root: root, offset: 10, length: 5),
          data.sublist(10, 15));
      final info = porter.statFile('a.bin', root: root);
      expect(info.type, FileType.regular);
      expect(info.size, data.length);
      expect(porter.listDir('', root: root).map((e) => e.name), contains('a.bin'));
      final chunks = porter.readFileChunks('a.bin', root: root).toList();
      expect(chunks.length, greaterThan(1));
      expect(chunks.expand((c) => c).toList(), data);
      porter.writeFile('a.bin', Uint8List.fromList([0, 0]),
          root: root, flags: FileWriteFlags.atomic);
      expect(porter.readFile('a.bin', root: root), [0, 0]);
      porter.deleteFile('a.bin', root: root);
      expect(
          () => porter.readFile('a.bin', root: root),
          throwsA(isA<PorterFileException>()
              .having((e) => e.kind, 'kind', FileErrorKind.notFound)
              .having((e) => e.path, 'path', 'a.bin')));
      expect(
          () => porter.readFile('../outside', root: root),
          throwsA(isA<PorterFileException>()
              .having((e) => e.kind, 'kind', FileErrorKind.escape)));
      porter.writeFile('x', data,
          root: root, flags: FileWriteFlags.create | FileWriteFlags.exclusive);
      expect(
          () => porter.writeFile('x', data,
              root: root, flags: FileWriteFlags.create | FileWriteFlags.exclusive),
          throwsA(isA<PorterFileException>()
              .having((e) => e.kind, 'kind', FileErrorKind.exists)));
      porter.deleteFile('x', root: root);
    });

    test('pool: concurrent writes and reads, errors cross intact', () async {
      await Future.wait([
        for (var i = 0; i < 16; i++)
          pool.writeFile('p$i.bin', Uint8List.fromList([0, i, 0]), root: root)
      ]);
      final back = await Future.wait(
          [for (var i = 0; i < 16; i++) pool.readFile('p$i.bin', root: root)]);
      for (var i = 0; i < 16; i++) {
        expect(back[i], [0, i, 0]);
      }
      expect((await pool.statFile('p3.bin', root: root)).size, 3);
      expect((await pool.listDir('', root: root)).length, greaterThanOrEqualTo(16));
      await Future.wait(
          [for (var i = 0; i < 16; i++) pool.deleteFile('p$i.bin', root: root)]);
      await expectLater(
          pool.readFile('p0.bin', root: root),
          throwsA(isA<PorterFileException>()
              .having((e) => e.kind, 'kind', FileErrorKind.notFound)));
    });
  });
}
