// Calls of the package's API (and of the SDK's, named like the package's)
// that a Dart compiler accepts: check_api_calls.js must report none.
// Not part of the package: only the selftest reads it.
import 'dart:ffi';
import 'dart:isolate';

import 'package:porter/porter.dart';
import 'package:porter/src/codec.dart' show encodeParams;

late PorterPool pool;
final Porter porter = Porter();

T pick<T, U>(T a, U b) => a;

Future<void> good(DbSession db, PorterCancelToken token) async {
  await pool.query('SELECT 1', session: db, cancel: token);
  porter.query('SELECT 1', session: db, callId: porter.newCallId());
  final p = await PorterPool.spawn(size: 2, libraryPath: 'x');
  await p.close();
  const o = HttpOptions(followRedirects: false);
  final b = PorterBatch()..addQuery('SELECT 1', conninfo: 'x', params: []);
  final n = DbNotice(severity: 'NOTICE', message: 'm');
  final out = StringBuffer()..write('x');
  out.write(pick<String, int>('a', 1));
  DynamicLibrary.open('libporter.so');
  await Isolate.spawn(print, 'x', debugName: 'x');
  pool.watch('a').listen(print, onError: (Object e) => print(e));
  final client = PorterHttpClient(pool);
  await client.get(Uri.parse('http://x/'));
  client.close();
  final k = switch (FileType.regular) {
    FileType.regular || FileType.symlink => 1,
    FileType.directory => 2,
    FileType.unknown || FileType.other => 3,
  };
  final m = switch (BatchMode.first) { BatchMode.all => 1, _ => 2 };
  // Getters, fields, statics and tear-offs that exist; a read of a
  // lambda's untyped parameter is no read of a typed variable's.
  final s = porter.stats();
  final r = porter.httpGet(Uri.parse('http://x/'));
  final close = p.close;
  print([s.connections, s.daemonVersion, FileWriteFlags.atomic, p.size,
    r.status, r.hashCode, r.headers.where((s) => s.name == 'x'), close]);
  print([o, b, n, encodeParams([1]), k, m]);
}
