// The loopback HTTP server the HTTP tests talk to: the project's own test
// server (tests/support/http_server.py), so the Dart tests, the C
// integration tests and the ctypes contract test all see the same routes.
import 'dart:async';
import 'dart:io';
import 'dart:typed_data';

/// The server the HTTP tests use.
class TestHttpServer {
  final Process? process;
  final Directory? dir;

  /// e.g. `http://127.0.0.1:40123`, no trailing slash.
  final String base;

  TestHttpServer._(this.process, this.dir, this.base);

  /// Uses the server at PORTER_TEST_HTTP_BASE when set (e.g.
  /// `http://127.0.0.1:8080`, one started by hand with
  /// `python3 tests/support/http_server.py --port-file /tmp/port`), else
  /// starts tests/support/http_server.py with python3 on a port the OS
  /// picks. PORTER_TEST_HTTP_SERVER overrides the script's path (by
  /// default found relative to this package, `../tests/support/`). The
  /// server exits by itself when this process goes away, or after ten
  /// minutes at most.
  static Future<TestHttpServer> start() async {
    final env = Platform.environment;
    final given = env['PORTER_TEST_HTTP_BASE'];
    if (given != null && given.isNotEmpty) {
      return TestHttpServer._(null, null, given.replaceAll(RegExp(r'/+$'), ''));
    }
    final script = env['PORTER_TEST_HTTP_SERVER'] ??
        '${Directory.current.path}/../tests/support/http_server.py';
    if (!File(script).existsSync()) {
      throw StateError('HTTP test server not found at $script: set '
          'PORTER_TEST_HTTP_SERVER (its path) or PORTER_TEST_HTTP_BASE '
          '(the base URL of a running one)');
    }
    final dir = await Directory.systemTemp.createTemp('porter-dart-http');
    final portFile = '${dir.path}/port';
    final process = await Process.start(
        'python3', [script, '--port-file', portFile, '--lifetime', '600']);
    unawaited(process.stdout.drain<void>());
    unawaited(process.stderr.drain<void>());
    final until = DateTime.now().add(const Duration(seconds: 10));
    for (;;) {
      final f = File(portFile);
      if (f.existsSync()) {
        final port = int.tryParse(f.readAsStringSync().trim());
        if (port != null) {
          return TestHttpServer._(process, dir, 'http://127.0.0.1:$port');
        }
      }
      if (DateTime.now().isAfter(until)) {
        process.kill(ProcessSignal.sigkill);
        throw StateError('the HTTP test server did not start within 10 s');
      }
      await Future<void>.delayed(const Duration(milliseconds: 20));
    }
  }

  /// The URL of [path] (which starts with '/').
  Uri url(String path) => Uri.parse('$base$path');

  /// Stops the server this started.
  Future<void> stop() async {
    final p = process;
    if (p != null) {
      p.kill(ProcessSignal.sigterm);
      await p.exitCode.timeout(const Duration(seconds: 5), onTimeout: () {
        p.kill(ProcessSignal.sigkill);
        return p.exitCode;
      });
    }
    await dir?.delete(recursive: true);
  }
}

/// The bytes `/bin/N` serves from offset [start]: (start + i) % 251, so
/// there are NULs at every multiple of 251.
Uint8List pattern(int start, int n) =>
    Uint8List.fromList([for (var i = 0; i < n; i++) (start + i) % 251]);
