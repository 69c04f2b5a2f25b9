// Tests of the Dart package against a real porterd; see README.md
// ("Running the tests") for how to start them.
import 'dart:async';
import 'dart:isolate';
import 'dart:typed_data';

import 'package:porter/porter.dart';
import 'package:test/test.dart';

import 'support/daemon.dart';

// Top-level rather than locals of main(): a closure sent to another
// isolate carries the contexts it was created in, and those must not hold
// unsendable objects (a Process, a ReceivePort).
late TestDaemon daemon;
late Porter porter;
late PorterPool pool;

/// Runs [body] with every call going to [socket], then points libporter
/// back at the test daemon. reset() makes every thread reconnect, so no
/// thread keeps a connection to the other socket.
Future<void> withSocket(String socket, FutureOr<void> Function() body) async {
  setenv('PORTER_SOCKET', socket);
  porter.reset();
  try {
    await body();
  } finally {
    setenv('PORTER_SOCKET', daemon.socket);
    porter.reset();
  }
}

/// [calls] pings with the synchronous API from a new isolate.
Future<int> pingInIsolate(int tag, int calls) => Isolate.run(() {
      final p = Porter();
      for (var j = 0; j < calls; j++) {
        p.ping(payload: Uint8List.fromList([tag, j & 0xff]));
      }
      p.disconnectThread();
      return calls;
    });

/// A daemon-side delayed ping made with [callId] from a new isolate (a
/// thread other than the canceller's); returns its outcome's code name.
Future<String> delayedPingInIsolate(int callId) => Isolate.run(() {
      final p = Porter();
      try {
        p.ping(
            delay: const Duration(seconds: 10),
            timeout: const Duration(seconds: 20),
            callId: callId);
        return 'ok';
      } on PorterException catch (e) {
        return e.name;
      } finally {
        p.disconnectThread();
      }
    });

void main() {
  setUpAll(() async {
    daemon = await TestDaemon.start();
    porter = Porter();
  });

  tearDownAll(() async {
    porter.disconnectThread();
    await daemon.stop();
  });

  group('sync', () {
    test('version, socket path and error names', () {
      expect(porter.version, PORTER_VERSION_STRING);
      expect(porter.socketPath, daemon.socket);
      expect(porter.errorName(porter_error.PORTER_E_TIMEOUT), 'PORTER_E_TIMEOUT');
      expect(porter.errorMessage(0), 'ok');
    });

    test('ping echoes payloads of every size', () {
      porter.ping();
      porter.ping(payload: Uint8List(0));
      for (final n in [1, 7, 4096, 1 << 20]) {
        final payload = Uint8List.fromList(List.generate(n, (i) => i & 0xff));
        porter.ping(payload: payload, timeout: const Duration(seconds: 5));
      }
    });

    test('stats describe the daemon', () {
      final s = porter.stats(timeout: const Duration(seconds: 2));
      expect(s.daemonVersion, porter.version);
      expect(s.workers, isNotEmpty);
      expect(s.connections, greaterThanOrEqualTo(1));
      expect(s.uptime, greaterThanOrEqualTo(Duration.zero));
      for (var i = 0; i < s.workers.length; i++) {
        expect(s.workers[i].worker, i);
      }
      // This process's uid holds at least this connection, within its
      // quota when there is one.
      final mine = s.uids.where((u) => u.connections > 0).toList();
      expect(mine, isNotEmpty);
      for (final u in mine) {
        expect(u.maxConnections == 0 || u.connections <= u.maxConnections,
            isTrue, reason: '$u');
      }
    });

    test('a negative timeout is refused before any call', () {
      expect(() => porter.ping(timeout: const Duration(milliseconds: -1)),
          throwsArgumentError);
    });

    test('several isolates ping concurrently', () async {
      const isolates = 8, calls = 500;
      final before = porter.stats().requests;
      final done = await Future.wait([
        for (var i = 0; i < isolates; i++) pingInIsolate(i, calls),
      ]);
      expect(done.fold<int>(0, (a, b) => a + b), isolates * calls);
      expect(porter.stats().requests - before,
          greaterThanOrEqualTo(isolates * calls));
    });

    test('unreachable daemon', () async {
      await withSocket('${daemon.socket}.absent', () {
        final sw = Stopwatch()..start();
        expect(() => porter.ping(timeout: const Duration(seconds: 2)),
            throwsA(isA<PorterUnreachableException>()
                .having((e) => e.code, 'code', porter_error.PORTER_E_UNREACHABLE)
                .having((e) => e.name, 'name', 'PORTER_E_UNREACHABLE')
                .having((e) => e.message, 'message', contains('absent'))));
        expect(sw.elapsed, lessThan(const Duration(seconds: 1)));
      });
      porter.ping();
    });

    test('a daemon that never answers times out', () async {
      final silent = await SilentServer.start();
      try {
        await withSocket(silent.path, () {
          final sw = Stopwatch()..start();
          expect(() => porter.ping(timeout: const Duration(milliseconds: 200)),
              throwsA(isA<PorterTimeoutException>()));
          expect(sw.elapsed, greaterThanOrEqualTo(const Duration(milliseconds: 150)));
          expect(sw.elapsed, lessThan(const Duration(seconds: 2)));
        });
      } finally {
        await silent.close();
      }
      porter.ping();
    });

    test('ping with a delay, and a delay past the timeout', () {
      final sw = Stopwatch()..start();
      porter.ping(delay: const Duration(milliseconds: 100));
      expect(sw.elapsed, greaterThanOrEqualTo(const Duration(milliseconds: 100)));
      sw.reset();
      expect(
          () => porter.ping(
              delay: const Duration(seconds: 3),
              timeout: const Duration(milliseconds: 200)),
          throwsA(isA<PorterTimeoutException>()));
      expect(sw.elapsed, lessThan(const Duration(seconds: 2)));
    });

    test('cancelling a call that is not running reports false', () {
      expect(porter.cancel(1 << 60), isFalse);
    });

    test('batch: all members, in order', () {
      final batch = PorterBatch(BatchMode.all);
      for (var i = 0; i < 3; i++) {
        expect(batch.addPing(payload: Uint8List.fromList([i, i + 1])), i);
      }
      final r = porter.batch(batch, timeout: const Duration(seconds: 2));
      expect(r.members, hasLength(3));
      expect(r.winner, isNull);
      for (var i = 0; i < 3; i++) {
        expect(r.members[i].ok, isTrue);
        expect(r.members[i].payload, [i, i + 1]);
      }
    });

    test('batch: first success wins, the others are stopped', () {
      final batch = PorterBatch(BatchMode.first)
        ..addPing(
            delay: const Duration(seconds: 5),
            timeout: const Duration(seconds: 8))
        ..addPing(payload: Uint8List.fromList([7]))
        ..addPing(
            delay: const Duration(seconds: 5),
            timeout: const Duration(seconds: 8));
      final sw = Stopwatch()..start();
      final r = porter.batch(batch, timeout: const Duration(seconds: 10));
      expect(sw.elapsed, lessThan(const Duration(seconds: 3)));
      expect(r.winner, 1);
      expect(r.members[1].payload, [7]);
      expect(r.members[0].error, isA<PorterCancelledException>());
      expect(r.members[2].error, isA<PorterCancelledException>());
    });

    test('calls after reset() work', () {
      porter.ping();
      porter.reset();
      porter.ping();
      expect(porter.stats().connections, greaterThanOrEqualTo(1));
    });
  });

  group('pool', () {
    setUp(() async {
      pool = await PorterPool.spawn(size: 4);
    });

    tearDown(() async {
      await pool.close();
    });

    test('many concurrent calls, none lost', () async {
      final calls = [
        for (var i = 0; i < 2000; i++)
          pool.ping(payload: Uint8List.fromList([i & 0xff, i >> 8])),
      ];
      expect(pool.queued, greaterThan(0));
      await Future.wait(calls);
      expect(pool.queued, 0);
      expect(pool.size, 4);
    });

    test('batches run on workers', () async {
      final batch = PorterBatch()
        ..addPing(payload: Uint8List.fromList([1]))
        ..addPing(delay: const Duration(milliseconds: 10));
      final results = await Future.wait([for (var i = 0; i < 20; i++) pool.batch(batch)]);
      for (final r in results) {
        expect(r.members.every((m) => m.ok), isTrue);
        expect(r.members[0].payload, [1]);
      }
    });

    test('stats come back as plain objects', () async {
      final s = await pool.stats();
      expect(s.daemonVersion, PORTER_VERSION_STRING);
      expect(s.connections, greaterThanOrEqualTo(1));
    });

    test('typed failures cross the isolate boundary', () async {
      await withSocket('${daemon.socket}.absent', () async {
        await expectLater(pool.ping(timeout: const Duration(seconds: 1)),
            throwsA(isA<PorterUnreachableException>()));
      });
      await pool.ping();
    });

    test('timeouts and cancellation', () async {
      final silent = await SilentServer.start();
      try {
        await withSocket(silent.path, () async {
          final one = await PorterPool.spawn(size: 1, reset: false);
          try {
            // The only worker is stuck on a call that will time out...
            final slow = one.ping(timeout: const Duration(milliseconds: 500));
            // ...so this one waits in the queue until it is cancelled.
            final token = PorterCancelToken();
            final queued = one.ping(cancel: token);
            expect(one.queued, 1);
            token.cancel();
            await expectLater(queued, throwsA(isA<PorterCancelledException>()));
            expect(one.queued, 0);
            await expectLater(slow, throwsA(isA<PorterTimeoutException>()));
            // A token cancelled before the call fails it at once.
            await expectLater(one.ping(cancel: token),
                throwsA(isA<PorterCancelledException>()));
          } finally {
            await one.close();
          }
        });
      } finally {
        await silent.close();
      }
      await pool.ping();
    });

    test('cancelling a running call stops it in the daemon', () async {
      final one = await PorterPool.spawn(size: 1, reset: false);
      try {
        final token = PorterCancelToken();
        final slow = one.ping(
            delay: const Duration(seconds: 10),
            timeout: const Duration(seconds: 20),
            cancel: token);
        await Future<void>.delayed(const Duration(milliseconds: 200));
        token.cancel();
        await expectLater(slow, throwsA(isA<PorterCancelledException>()));
        // The only worker is free again long before the 10 s delay: the
        // daemon stopped the call rather than letting it run out.
        final sw = Stopwatch()..start();
        await one.ping(timeout: const Duration(seconds: 5));
        expect(sw.elapsed, lessThan(const Duration(seconds: 3)));
      } finally {
        await one.close();
      }
    });

    test('an id taken on one isolate cancels a call made on another', () async {
      // porter_call_id_new: no thread state, so the id is good on any
      // thread; a cancel that arrives first is remembered by porterd.
      final id = porter.newCallId();
      final sw = Stopwatch()..start();
      final f = delayedPingInIsolate(id);
      await Future<void>.delayed(const Duration(milliseconds: 200));
      porter.cancelNowait(id); // never waits
      expect(await f, 'PORTER_E_CANCELLED');
      expect(sw.elapsed, lessThan(const Duration(seconds: 5)));
      // An id taken and never used leaves nothing behind: the next call on
      // this thread is not refused (a reservation used to be).
      porter.newCallId();
      porter.ping(timeout: const Duration(seconds: 2));
    });

    test('a token holds no listener for calls that ended', () async {
      final token = PorterCancelToken();
      await Future.wait([for (var i = 0; i < 500; i++) pool.ping(cancel: token)]);
      expect(token.listenerCount, 0);
      await pool.ping(cancel: token);
      expect(token.listenerCount, 0);
    });

    test('a bad parameter fails in the caller and leaves the worker free',
        () async {
      final one = await PorterPool.spawn(size: 1, reset: false);
      try {
        // A ReceivePort is no parameter (and cannot cross isolates): the
        // call fails with an ArgumentError before reaching the worker.
        final port = ReceivePort();
        try {
          await expectLater(
              one.query('SELECT 1', conninfo: 'x', params: [port]),
              throwsArgumentError);
          expect(() => PorterBatch().addQuery('SELECT 1',
              conninfo: 'x', params: [port]), throwsArgumentError);
        } finally {
          port.close();
        }
        // The only worker is free: close() does not hang, a call runs.
        await one.ping(timeout: const Duration(seconds: 5));
      } finally {
        await one.close();
      }
    });

    test('a closed pool refuses calls', () async {
      final p = await PorterPool.spawn(size: 1, reset: false);
      await p.ping();
      await p.close();
      expect(p.isClosed, isTrue);
      await expectLater(p.ping(), throwsStateError);
    });

    test('close waits for calls in flight', () async {
      final p = await PorterPool.spawn(size: 2, reset: false);
      final calls = [for (var i = 0; i < 100; i++) p.ping()];
      await p.close();
      await Future.wait(calls);
    });

    test('size is bounded', () {
      expect(PorterPool.spawn(size: 0), throwsRangeError);
      expect(PorterPool.spawn(size: PorterPool.maxSize + 1), throwsRangeError);
    });
  });

  group('exceptions', () {
    test('codes map to subclasses', () {
      expect(PorterException.fromCode(-4, 'PORTER_E_TIMEOUT', 'x'),
          isA<PorterTimeoutException>());
      expect(PorterException.fromCode(-3, 'PORTER_E_UNREACHABLE', 'x'),
          isA<PorterUnreachableException>());
      expect(PorterException.fromCode(-11, 'PORTER_E_CANCELLED', 'x'),
          isA<PorterCancelledException>());
      // -20 is a database code: its own class (the old test expected a
      // plain PorterException here and always failed).
      expect(PorterException.fromCode(-20, 'PORTER_E_DB', 'x'),
          isA<PorterDbException>());
      expect(PorterException.fromCode(-14, 'PORTER_E_NOT_FOUND', 'x'),
          isA<PorterNotFoundException>());
      final other = PorterException.fromCode(-99, 'PORTER_E_NEWER', 'x');
      expect(other.runtimeType, PorterException);
      expect(other.code, -99);
    });
  });
}
