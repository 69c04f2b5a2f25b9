// Pings porterd and prints its counters, first through the asynchronous
// pool (what an app's UI isolate uses), then synchronously from a
// background isolate. With PORTER_EXAMPLE_CONNINFO set it also runs a
// typed query, a transaction and a streamed result; with PORTER_EXAMPLE_URL
// set it GETs that URL through package:http's interface, then streams it
// and counts the bytes; then it watches a directory of porterd's first
// file root while it writes, renames and deletes a file there.
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

import 'package:http/http.dart' as http;
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
      await web(pool, Uri.parse(url));
    }

    await files(pool);
  } on PorterFileException catch (e) {
    print('file ${e.path}: ${e.kind}: ${e.message}');
  } on PorterDbException catch (e) {
    print('SQLSTATE ${e.sqlstate}: ${e.message}');
  } on PorterHttpException catch (e) {
    print('HTTP ${e.name}${e.status == 0 ? '' : ' ${e.status}'}: ${e.message}');
  } on PorterUnreachableException catch (e) {
    print('porterd is not running: ${e.message}');
    return;
  } on PorterException catch (e) {
    // Any other failure (a timeout, a busy or refusing daemon), by name.
    print('${e.name}: ${e.message}');
  } on http.ClientException catch (e) {
    // What PorterHttpClient throws, as every package:http client: a host
    // that does not resolve, a refused connection, a timeout.
    print('HTTP request failed: ${e.message}');
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

/// A typed query, a transaction, and a streamed result.
Future<void> database(PorterPool pool, String conninfo) async {
  // Typed values: parameters from Dart values, rows decoded by type.
  final r = await pool.query(
      r'SELECT $1::int8 + 1 AS n, now() AS at, $2::bytea AS raw, '
      "'{\"a\": [1, 2]}'::jsonb AS doc",
      conninfo: conninfo,
      params: [41, Uint8List.fromList([0, 1, 2])]);
  final row = r.rows.single;
  print('n=${row.getInt('n')} at=${row.getDateTime('at').toIso8601String()} '
      'raw=${row.getBytes('raw')} doc=${row['doc']}');

  // What the server says besides rows: notices, and errors with their
  // fields, shown as psql shows them.
  final dropped = await pool.query('DROP TABLE IF EXISTS porter_no_such_table',
      conninfo: conninfo);
  dropped.notices.forEach(print);
  const bad = 'SELECT 1,\n  2 FROM FROM';
  try {
    await pool.query(bad, conninfo: conninfo);
  } on PorterDbException catch (e) {
    print(e.describe(bad));
  }

  // A transaction: committed when the body completes, rolled back when it
  // throws or is cancelled; its session is the pool's to close.
  final total = await pool.transaction((tx) async {
    await tx.query('CREATE TEMP TABLE t (k int, v bytea)');
    for (var k = 0; k < 4; k++) {
      await tx.query(r'INSERT INTO t VALUES ($1, $2)',
          params: [k, Uint8List.fromList([0, k])]);
    }
    final s = await tx.query('SELECT sum(k) AS s FROM t');
    return s.rows.single.getInt('s');
  }, conninfo: conninfo);
  print('transaction committed, sum $total');

  var n = 0;
  await for (final chunk in pool.queryStream(
      'SELECT g FROM generate_series(1, 100000) g',
      conninfo: conninfo,
      chunkRows: 10000)) {
    n += chunk.length;
  }
  print('streamed $n rows');
}

/// An HTTP GET through package:http's interface, and the same URL
/// streamed chunk by chunk.
Future<void> web(PorterPool pool, Uri url) async {
  final client = PorterHttpClient(pool, timeout: const Duration(seconds: 10));
  try {
    final http.Response r = await client.get(url);
    print('GET $url: ${r.statusCode}, ${r.headers['content-type']}, '
        '${r.bodyBytes.length} bytes');
  } finally {
    client.close();
  }
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

/// A watch of a directory while files change in it, and a file round trip.
Future<void> files(PorterPool pool) async {
  await pool.createDirectory('porter-example', recursive: true);
  final seen = <PorterFileEvent>[];
  final sub = pool
      .watch('porter-example', pollInterval: const Duration(milliseconds: 50))
      .listen((e) {
    seen.add(e);
    print('watch: $e');
  },
          // Without it a failed watch (a busy porterd, a path gone) would
          // be an uncaught error that ends the program: a stream's errors
          // do not reach the try around the calls below.
          onError: (Object e) => print('watch failed: $e'));
  try {
    // The watch starts when the stream is listened to; wait for it to see
    // a first change.
    for (var k = 0; seen.isEmpty && k < 50; k++) {
      await pool.writeFile('porter-example/hello.txt', utf8.encode('hello $k'));
      await Future<void>.delayed(const Duration(milliseconds: 100));
    }
    final back = await pool.readFile('porter-example/hello.txt');
    print('file round trip: ${back.length} bytes, '
        '${(await pool.statFile('porter-example/hello.txt')).type}');
    await pool.renameFile('porter-example/hello.txt', 'porter-example/bye.txt');
    await pool.deleteFile('porter-example/bye.txt');
    await Future<void>.delayed(const Duration(milliseconds: 500));
  } finally {
    await sub.cancel();
  }
  await pool.deleteFile('porter-example', directory: true);
}
