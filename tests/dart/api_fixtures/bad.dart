// Calls a Dart compiler would refuse, one per line, each of which
// check_api_calls.js must report (check_api_calls_selftest.js names the
// lines). Not part of the package: only the selftest reads it.
import 'package:porter/porter.dart';

late PorterPool pool;
late Porter porter;

Future<void> bad(DbSession db, PorterCancelToken token) async {
  await pool.query('SELECT 1', sesion: db);
  porter.query('SELECT 1', session: db, cancel: token);
  porter.ping(payload: null, retries: 2);
  final p = await PorterPool.spawn(size: 2, libraryPth: 'x');
  const o = HttpOptions(followRedirect: false);
  final b = PorterBatch()..addQuery('SELECT 1', conninfo: 'x', param: []);
  final n = DbNotice(message: 'm');
  pool.watch('a', 'b');
  await pool.dbClose();
  pool.frobnicate();
  final bytes = await pool.readFile('a');
  final bytes = await pool.readFile('b');
  await p.close(force: true);
  final ms = encodeParams([1]);
  final t = const PorterCancelToken();
  final k = switch (BatchMode.all) { BatchMode.all => 1 };
  pool.watch('a').listen((e) => print(e));
  final s = porter.stats();
  print(s.conections);
  print(FileWriteFlags.atomik);
  print(p.sise);
  print([o, b, n, bytes, ms, t, k]);
}
