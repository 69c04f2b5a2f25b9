// Pings porterd and prints its counters, first through the asynchronous
// pool (what an app's UI isolate uses), then synchronously from a
// background isolate.
//
//   porterd --socket /tmp/porter-example.sock &
//   PORTER_SOCKET=/tmp/porter-example.sock \
//   PORTER_LIBRARY=../build/client/libporter.so dart run example/main.dart
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
