// Pings porterd and prints its counters, first through the asynchronous
// pool (what an app's UI isolate uses), then synchronously from a
// background isolate. With PORTER_EXAMPLE_CONNINFO set it also runs a
// transaction and streams a result; with PORTER_EXAMPLE_URL set it GETs
// that URL, then streams it and counts the bytes; then it writes, reads and
// deletes a file in porterd's first file root.
//
//   porterd --socket /tmp/porter-example.sock &
//   PORTER_SOCKET=/tmp/porter-example.sock \
//   PORTER_EXAMPLE_CONNINFO='host=/run/postgresql dbname=postgres' \
//   PORTER_EXAMPLE_URL=https://example.org/ \
//   PORTER_LIBRARY=../build/client/libporter.so dart run example/main.dart
import 'dart:convert';
import 'dart:io' show Platform;
import 'dart:isolate';
import 'dart:typed_data';

import 'package:porter/porter.dart';

Future<void> main() async {
  final pool = await PorterPool.spawn(size: 2);
  try {
    final sw = Stopwatch()..start();
    // Eight calls in flight at once; none of them blocks this isolate.
    await Future.wait([
      for (var i = 0; i < 8; i++)
        pool.ping(
            payload: Uint8List.fromList([i]),
            timeout: const Duration(seconds: 2)),
    ]);
    print('8 pings in ${sw.elapsedMicroseconds} us');
    print(await pool.stats());

    final conninfo = Platform.environment['PORTER_EXAMPLE_CONNINFO'];
    if (conninfo != null && conninfo.isNotEmpty) {
      await database(pool, conninfo);
    }

    final url = Platform.environment['PORTER_EXAMPLE_URL'];
    if (url != null && url.isNotEmpty) {
      await web(pool, url);
    }

    await pool.writeFile('porter-example.txt', utf8.encode('hello\u0000world'));
    final back = await pool.readFile('porter-example.txt');
    print('file round trip: ${back.length} bytes, '
        '${(await pool.statFile('porter-example.txt')).type}');
    await pool.deleteFile('porter-example.txt');
  } on PorterFileException catch (e) {
    print('file ${e.path}: ${e.kind}: ${e.message}');
  } on PorterDbException catch (e) {
    print('SQLSTATE ${e.sqlstate}: ${e.message}');
  } on PorterHttpException catch (e) {
    print('HTTP ${e.name}${e.status == 0 ? '' : ' ${e.status}'}: ${e.message}');
  } on PorterUnreachableException catch (e) {
    print('porterd is not running: ${e.message}');
    return;
  } finally {
    await pool.close();
  }

  // A background isolate may block: it uses the synchronous API directly.
  print('daemon version ${await Isolate.run(backgroundWork)}');
}

/// Runs in a background isolate (a top-level function, so nothing of
/// main()'s state is sent along).
String backgroundWork() {
  final porter = Porter();
  porter.ping(timeout: const Duration(seconds: 1));
  return porter.stats().daemonVersion;
}

/// A session used by the pool's workers in turn, inside one transaction,
/// and a streamed result read chunk by chunk.
Future<void> database(PorterPool pool, String conninfo) async {
  final db = await pool.dbOpen(conninfo);
  try {
    await pool.query('BEGIN', session: db);
    await pool.query('CREATE TEMP TABLE t (k int, v bytea)', session: db);
    await Future.wait([
      for (var k = 0; k < 4; k++)
        pool.query(r'INSERT INTO t VALUES ($1, $2)',
            session: db, params: [k, Uint8List.fromList([0, k])]),
    ]);
    final r = await pool.query('SELECT k, v FROM t ORDER BY k', session: db);
    print('rows: ${r.rows}');
    await pool.query('COMMIT', session: db);
    var n = 0;
    await for (final chunk in pool.queryStream(
        'SELECT g FROM generate_series(1, 100000) g',
        session: db,
        chunkRows: 10000)) {
      n += chunk.length;
    }
    print('streamed $n rows');
  } finally {
    await pool.dbClose(db);
  }
}

/// An HTTP GET (the whole body) and the same URL streamed chunk by chunk.
Future<void> web(PorterPool pool, String url) async {
  final r = await pool.httpGet(url, timeout: const Duration(seconds: 10));
  print('GET $url: ${r.status}, ${r.header('content-type')}, '
      '${r.body.length} bytes from ${r.effectiveUrl} '
      '(${r.redirects} redirects; ${r.timings})');
  final s = await pool.httpStream(url,
      options: const HttpOptions(chunkSize: 16384),
      timeout: const Duration(seconds: 10));
  var chunks = 0;
  var bytes = 0;
  await for (final c in s.body) {
    chunks++;
    bytes += c.length;
  }
  print('streamed: $bytes bytes in $chunks chunks; ${(await s.done).timings}');
}
