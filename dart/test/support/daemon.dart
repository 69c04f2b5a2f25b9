// A porterd for the tests: started here when PORTERD names its binary,
// else the one PORTER_SOCKET points at must already run.
import 'dart:async';
import 'dart:ffi';
import 'dart:io';

import 'package:ffi/ffi.dart';
import 'package:porter/porter.dart';

typedef _SetenvC = Int Function(Pointer<Utf8>, Pointer<Utf8>, Int);
typedef _SetenvDart = int Function(Pointer<Utf8>, Pointer<Utf8>, int);

/// Sets an environment variable of this process, where libporter reads
/// it (Platform.environment is a read-only copy).
void setenv(String name, String value) {
  final f = DynamicLibrary.process()
      .lookupFunction<_SetenvC, _SetenvDart>('setenv');
  final n = name.toNativeUtf8();
  final v = value.toNativeUtf8();
  try {
    if (f(n, v, 1) != 0) throw StateError('setenv $name failed');
  } finally {
    malloc.free(n);
    malloc.free(v);
  }
}

/// The daemon the tests talk to.
class TestDaemon {
  final Process? process;
  final Directory? dir;
  final String socket;
  TestDaemon._(this.process, this.dir, this.socket);

  /// Starts porterd (when PORTERD is set) on a socket in a temp dir and
  /// points PORTER_SOCKET at it, or uses the running one.
  static Future<TestDaemon> start() async {
    final porterd = Platform.environment['PORTERD'];
    if (porterd == null || porterd.isEmpty) {
      final socket = Platform.environment['PORTER_SOCKET'];
      if (socket == null || socket.isEmpty) {
        throw StateError('set PORTERD (path of porterd) or PORTER_SOCKET');
      }
      return TestDaemon._(null, null, socket);
    }
    final dir = await Directory.systemTemp.createTemp('porter-dart-test');
    final socket = '${dir.path}/porter.sock';
    // A private file root, so the file tests never touch the user's files.
    final files = await Directory('${dir.path}/files').create();
    final process = await Process.start(porterd, [
      '--socket',
      socket,
      '--file-roots',
      'files=${files.path}',
      '--file-chunk-size',
      '65536',
    ]);
    unawaited(process.stderr.drain<void>());
    unawaited(process.stdout.drain<void>());
    setenv('PORTER_SOCKET', socket);
    final porter = Porter();
    final until = DateTime.now().add(const Duration(seconds: 10));
    for (;;) {
      try {
        porter.ping(timeout: const Duration(milliseconds: 500));
        break;
      } on PorterUnreachableException {
        if (DateTime.now().isAfter(until)) {
          process.kill(ProcessSignal.sigkill);
          rethrow;
        }
        await Future<void>.delayed(const Duration(milliseconds: 20));
      }
    }
    return TestDaemon._(process, dir, socket);
  }

  /// The directory of the file root "files" of a daemon started here;
  /// null for a daemon that was already running.
  String? get fileRoot {
    final d = dir;
    return d == null ? null : '${d.path}/files';
  }

  /// Stops the daemon this started and removes its directory.
  Future<void> stop() async {
    final p = process;
    if (p != null) {
      p.kill(ProcessSignal.sigterm);
      await p.exitCode.timeout(const Duration(seconds: 10), onTimeout: () {
        p.kill(ProcessSignal.sigkill);
        return p.exitCode;
      });
    }
    await dir?.delete(recursive: true);
  }
}

/// The file root the tests use: the private one of a daemon started here,
/// else (null) the first root of the running daemon.
String? get testFileRoot {
  final porterd = Platform.environment['PORTERD'];
  return porterd == null || porterd.isEmpty ? null : 'files';
}

/// The PostgreSQL the database tests use: PORTER_TEST_CONNINFO (a libpq
/// conninfo string), else the `conninfo` file in PORTER_PG_STATE (the
/// state directory of tests/support/pg.sh). Throws when neither is set:
/// the database tests need a real server.
String testConninfo() {
  final env = Platform.environment;
  final ci = env['PORTER_TEST_CONNINFO'];
  if (ci != null && ci.isNotEmpty) return ci;
  final state = env['PORTER_PG_STATE'];
  if (state != null && state.isNotEmpty) {
    return File('$state/conninfo').readAsStringSync().trim();
  }
  throw StateError('set PORTER_TEST_CONNINFO (libpq conninfo) or '
      'PORTER_PG_STATE (tests/support/pg.sh state directory)');
}

/// A Unix socket server that accepts connections and never answers, so
/// every call to it times out.
class SilentServer {
  final ServerSocket server;
  final Directory dir;
  final List<Socket> clients = [];
  SilentServer._(this.server, this.dir);

  String get path => '${dir.path}/silent.sock';

  static Future<SilentServer> start() async {
    final dir = await Directory.systemTemp.createTemp('porter-silent');
    final server = await ServerSocket.bind(
        InternetAddress('${dir.path}/silent.sock',
            type: InternetAddressType.unix),
        0);
    final s = SilentServer._(server, dir);
    server.listen(s.clients.add);
    return s;
  }

  Future<void> close() async {
    for (final c in clients) {
      c.destroy();
    }
    await server.close();
    await dir.delete(recursive: true);
  }
}
