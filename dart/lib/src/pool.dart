// The asynchronous API: a bounded pool of worker isolates making blocking
// calls, so the isolate that uses the pool never blocks.
import 'dart:async';
import 'dart:collection';
import 'dart:convert';
import 'dart:ffi';
import 'dart:io' show Platform;
import 'dart:isolate';
import 'dart:math' show max, min;
import 'dart:typed_data';

import 'batch.dart';
import 'bindings.g.dart';
import 'codec.dart';
import 'db.dart';
import 'db_diag.dart';
import 'errors.dart';
import 'file_watch.dart';
import 'files.dart';
import 'http.dart';
import 'http_upload.dart';
import 'library.dart';
import 'native.dart' show checkNativeText;
import 'stats.dart';
import 'sync.dart';

part 'pool_db.dart';
part 'pool_files.dart';
part 'pool_http.dart';
part 'pool_jobs.dart';
part 'pool_stream.dart';
part 'pool_upload.dart';
part 'pool_worker.dart';

/// What the pool's groups of calls (pool_db.dart, pool_http.dart,
/// pool_files.dart: mixins of the one class) need of it: queuing a call,
/// and the pool itself, which owns their streams.
abstract class _PoolCore {
  PorterPool get _pool;

  /// Queues one call; see [PorterPool._submit].
  Future<Object?> _submit(_Op op, Duration? timeout, PorterCancelToken? cancel,
      {Uint8List? payload, Duration? delay, Object? args});

  /// Queues one call and returns its job; see [PorterPool._enqueue].
  _Job _enqueue(_Op op, Duration? timeout, PorterCancelToken? cancel,
      {Uint8List? payload, Duration? delay, Object? args, Object? keepAlive});

  /// Queues a call of the pool's own; see [PorterPool._enqueueInternal].
  _Job _enqueueInternal(_Op op, Duration? timeout, Object? args);
}

/// Asynchronous access to porterd that never blocks the calling isolate.
///
/// The pool owns a fixed number of long-lived worker isolates. Each call is
/// queued, handed to an idle worker, made there with a blocking native call
/// on that worker's thread connection, and its result comes back as a
/// `Future`. The pool is bounded because every worker blocked in a native
/// call holds one of the threads the Dart VM lets run Dart code at once:
/// an unbounded number of blocked isolates would starve the rest of the
/// app. Calls beyond the pool size wait in the pool's queue, in order.
///
/// Streams (query results, HTTP bodies, files) hold no worker between
/// chunks: each chunk is a call of its own, made by whichever worker is
/// free while the listener wants more, so a paused listener costs nothing.
///
/// Create it once, at start-up, from the isolate that will use it (on
/// Flutter, the UI isolate): `await PorterPool.spawn()`. [close] it when
/// done: it closes the sessions and streams it opened that are still open.
///
/// The calls are grouped by concern, one file each (the class is one):
/// PostgreSQL (pool_db.dart), HTTP (pool_http.dart), files
/// (pool_files.dart); pings, stats, batches and the pool itself are here.
final class PorterPool extends _PoolCore
    with _PoolDb, _PoolHttp, _PoolFiles {
  /// The most workers a pool may have.
  static const int maxSize = 16;

  /// Set once this isolate has reset libporter's client instance; statics
  /// start over on a hot restart, so the first pool of the new run resets.
  static bool _resetDone = false;

  /// The library path workers open (see [openPorterLibrary]).
  final String? libraryPath;

  /// Timeouts for calls that give none.
  final PorterTimeouts timeouts;

  final List<_Worker> _workers = [];
  final Queue<_Job> _queue = Queue<_Job>();

  /// Workers being started, by [spawn] or in place of one that died:
  /// [close] waits for them. One whose isolate came up after close had
  /// stopped the others would be left running, unasked for, and its
  /// ports (and so the app's isolate) open for good.
  final Set<Future<void>> _starting = {};

  /// Native stream handles this pool owns, by address: [close] closes
  /// those still open. A close names its [_Drop], not just the address:
  /// an address freed by a close may come back for a new handle, which a
  /// late close of the old one must not touch.
  final Map<int, _Drop> _handles = {};

  final RawReceivePort _replies = RawReceivePort();
  Completer<void>? _drained;
  Future<void>? _closing;
  int _nextId = 1;
  bool _closed = false;

  /// The bindings on this isolate, for what never waits: picking call
  /// ids, sending cancels and freeing stream handles.
  final PorterBindings _b;

  @override
  PorterPool get _pool => this;

  PorterPool._(this.libraryPath, this.timeouts)
      : _b = porterBindings(path: libraryPath) {
    _replies.handler = _onMessage;
  }

  /// A default size: the processor count, between 2 and 4.
  static int get defaultSize => min(4, max(2, Platform.numberOfProcessors));

  /// Starts a pool of [size] workers (1..[maxSize]; default [defaultSize]).
  ///
  /// [timeouts] apply to calls that give none (default: libporter's 5 s).
  ///
  /// With [reset] (the default) the first pool spawned in an isolate's run
  /// calls `porter_reset()` first, so after a hot restart the daemon
  /// releases what the previous run left open. That is process-wide: pass
  /// `reset: false` when other isolates already use porter and must keep
  /// their sessions.
  ///
  /// Throws when a worker cannot start (for example when libporter cannot
  /// be opened); no worker is left running then.
  static Future<PorterPool> spawn(
      {int? size,
      String? libraryPath,
      PorterTimeouts timeouts = PorterTimeouts.defaults,
      bool reset = true}) async {
    final n = size ?? defaultSize;
    if (n < 1 || n > maxSize) {
      throw RangeError.range(n, 1, maxSize, 'size');
    }
    if (reset && !_resetDone) {
      // porter_reset never blocks, so this is safe on the UI isolate.
      Porter(libraryPath: libraryPath).reset();
      _resetDone = true;
    }
    final pool = PorterPool._(libraryPath, timeouts);
    try {
      await Future.wait([for (var i = 0; i < n; i++) pool._spawnWorker(i)]);
    } catch (_) {
      await pool.close();
      rethrow;
    }
    return pool;
  }

  /// The number of worker isolates.
  int get size => _workers.length;

  /// Calls waiting for a worker.
  int get queued => _queue.length;

  /// Whether [close] was called.
  bool get isClosed => _closed;

  /// Sessions opened through this pool that are still open.
  Set<DbSession> get openSessions => Set.unmodifiable(_sessions);

  /// Stream handles (cursors, HTTP streams, file readers) still open.
  int get openStreams => _handles.length;

  /// Sends a ping carrying [payload] and waits for the echo (after [delay]
  /// when given); see [Porter.ping].
  Future<void> ping(
          {Uint8List? payload,
          Duration? delay,
          Duration? timeout,
          PorterCancelToken? cancel}) =>
      _submit(_Op.ping, timeout, cancel, payload: payload, delay: delay)
          .then((_) {});

  /// Runs [batch] on a worker; see [Porter.batch].
  Future<PorterBatchResult> batch(PorterBatch batch,
          {Duration? timeout, PorterCancelToken? cancel}) =>
      _submit(_Op.batch, timeout, cancel, args: batch)
          .then((v) => v as PorterBatchResult);

  /// The daemon's counters; see [Porter.stats].
  Future<PorterStats> stats({Duration? timeout, PorterCancelToken? cancel}) =>
      _submit(_Op.stats, timeout, cancel).then((v) => v as PorterStats);

  /// Stops taking calls, lets the queued and running ones finish, closes
  /// the streams and sessions opened through the pool that are still open
  /// (rolling back their transactions), then stops the workers (each
  /// closes its thread's connection first). Every call of close() returns
  /// the same future.
  Future<void> close() => _closing ??= _close();

  Future<void> _close() async {
    // Queued and running calls finish first; new ones are refused, except
    // the closes below, which go through _enqueue's internal path.
    _closed = true;
    await _waitDrained();
    // A replacement started before close began (no new one starts now)
    // becomes a worker like the others, or fails; either way it is in
    // [_workers] below or gone.
    while (_starting.isNotEmpty) {
      await Future.wait([
        for (final f in _starting) f.catchError((Object _) {}),
      ]);
    }
    for (final d in List.of(_handles.values)) {
      _freeHandle(d);
    }
    for (final s in List.of(_sessions)) {
      await _closeSession(s);
    }
    final exits = <Future<void>>[];
    for (final w in List.of(_workers)) {
      final isolate = w.isolate;
      if (isolate == null) continue;
      final gone = Completer<void>();
      w.exitPort.handler = (Object? _) {
        w.closePorts();
        gone.complete();
      };
      exits.add(gone.future);
      if (w.port != null) {
        w.port!.send(null);
      } else {
        isolate.kill(priority: Isolate.immediate);
      }
    }
    await Future.wait(exits);
    _workers.clear();
    _replies.close();
  }

  Future<void> _waitDrained() async {
    if (_queue.isNotEmpty || _workers.any((w) => w.job != null)) {
      final d = _drained = Completer<void>();
      _checkDrained();
      await d.future;
    }
  }

  static Future<Object?> _result(_Job job) => job.completer.future;

  /// Records native handle [address] (opened by [op]) as the pool's, for
  /// [_freeHandle] and for [close].
  _Drop _own(_Op op, int address) =>
      _handles[address] = _Drop(this, op, address);

  /// Frees the native stream handle of [d] with its free that never
  /// waits (libporter's background thread tells porterd), on this isolate,
  /// once: an address freed may come back for a new handle, which a late
  /// free of the old one must not touch, so [d] must still be the record
  /// of its address.
  void _freeHandle(_Drop d) {
    if (!identical(_handles[d.address], d)) return;
    _handles.remove(d.address);
    _freeNative(_b, d.openOp, d.address);
  }

  /// Starts worker [index]; completes once it is ready to take calls.
  Future<void> _spawnWorker(int index) {
    final f = _startWorker(index);
    _starting.add(f);
    unawaited(f
        .then<void>((_) {}, onError: (Object _) {})
        .whenComplete(() => _starting.remove(f)));
    return f;
  }

  Future<void> _startWorker(int index) async {
    final w = _Worker(index);
    _workers.add(w);
    w.errorPort.handler = (Object? e) {
      if (e is List<Object?> && e.isNotEmpty) w.lastError = '${e.first}';
    };
    w.exitPort.handler = (Object? _) => _onExit(w);
    try {
      w.isolate = await Isolate.spawn(
          _workerMain, _Start(index, libraryPath, _replies.sendPort),
          onExit: w.exitPort.sendPort,
          onError: w.errorPort.sendPort,
          debugName: 'porter worker $index');
    } catch (e) {
      _workers.remove(w);
      w.closePorts();
      rethrow;
    }
    return w.ready.future;
  }

  _Worker? _worker(int index) {
    for (final w in _workers) {
      if (w.index == index) return w;
    }
    return null;
  }

  void _onMessage(Object? msg) {
    if (msg is _Reply) {
      final w = _worker(msg.worker);
      final job = w?.job;
      if (w == null || job == null || job.id != msg.id) return;
      w.job = null;
      if (msg.code == 0) {
        if (!job.done) {
          job.completer.complete(msg.result);
        } else {
          job.lateResult = msg.result;
        }
      } else {
        job.fail(msg.error ??
            PorterException.fromCode(msg.code, msg.name, msg.message));
      }
      job.settle();
      _pump();
    } else if (msg is _Ready) {
      final w = _worker(msg.worker);
      if (w == null) return;
      w.port = msg.port;
      if (!w.ready.isCompleted) w.ready.complete();
      _pump();
    } else if (msg is _Failed) {
      final w = _worker(msg.worker);
      if (w == null) return;
      w.lastError = msg.error;
      if (!w.ready.isCompleted) {
        w.ready.completeError(
            StateError('porter worker ${w.index}: ${msg.error}'));
      }
    }
  }

  /// A worker isolate ended without being asked to.
  void _onExit(_Worker w) {
    w.closePorts();
    _workers.remove(w);
    final why = w.lastError ?? 'exited';
    if (w.port == null) {
      // It never started: report that to spawn(), and do not respawn (it
      // would fail the same way).
      if (!w.ready.isCompleted) {
        w.ready.completeError(StateError('porter worker ${w.index}: $why'));
      }
      return;
    }
    w.job?.fail(PorterInternalException(
        'PORTER_E_INTERNAL', 'porter worker ${w.index} died: $why'));
    w.job?.settle();
    w.job = null;
    if (!_closed) {
      // Keep the pool at its size; a failure to respawn shows up as a
      // smaller pool, and calls still run on the workers left.
      unawaited(_spawnWorker(w.index).catchError((Object e) {
        if (_workers.isEmpty) _failQueued(e);
      }));
    } else if (_workers.isEmpty) {
      _failQueued(StateError('no porter worker left'));
    }
    _pump();
  }

  /// Fails every queued call: no worker is left to run them.
  void _failQueued(Object error) {
    while (_queue.isNotEmpty) {
      final job = _queue.removeFirst();
      job.fail(error);
      job.settle();
    }
    _checkDrained();
  }

  /// Queues one call. Argument errors, a closed pool and a cancelled
  /// token all fail the returned future rather than throw.
  @override
  Future<Object?> _submit(_Op op, Duration? timeout, PorterCancelToken? cancel,
          {Uint8List? payload, Duration? delay, Object? args}) =>
      Future<Object?>.sync(() => _enqueue(op, timeout, cancel,
              payload: payload, delay: delay, args: args)
          .completer
          .future);

  /// Queues one call and returns its job; throws for argument errors, a
  /// closed pool and a cancelled token. [keepAlive] is held by the job
  /// (never sent) for as long as a worker may run it: see [_Job.keepAlive].
  @override
  _Job _enqueue(_Op op, Duration? timeout, PorterCancelToken? cancel,
      {Uint8List? payload, Duration? delay, Object? args, Object? keepAlive}) {
    if (_closed) throw StateError('PorterPool is closed');
    if (delay != null && delay.isNegative) {
      throw ArgumentError.value(delay, 'delay', 'must not be negative');
    }
    if (cancel != null && cancel.isCancelled) throw _cancelled();
    // -1: no delay (plain ping); the worker clamps large values.
    final job = _Job(_nextId++, op, timeoutMs(timeout ?? timeouts._for(op)),
        delay == null ? -1 : delay.inMilliseconds, payload, args, _callIdFor(op))
      ..keepAlive = keepAlive;
    if (cancel != null) job.unlisten = cancel._listen(() => _cancel(job));
    _queue.add(job);
    _pump();
    return job;
  }

  /// A new native call id for a call of [op], picked here so a cancel can
  /// name it whether or not a worker runs it yet. Stream reads, and an
  /// upload's writes and finish, get 0: they use their open's id.
  int _callIdFor(_Op op) => switch (op) {
        _Op.cursorRead ||
        _Op.httpRead ||
        _Op.readerRead ||
        _Op.watchRead ||
        _Op.uploadWrite ||
        _Op.uploadFinish =>
          0,
        _ => _b.porter_call_id_new(),
      };

  /// Sends a cancel of [callId] without waiting (libporter's background
  /// thread does). Best effort: the call's own deadline still bounds it.
  void _cancelNowait(int callId) => _b.porter_cancel_nowait(callId);

  /// Queues a call of the pool's own (closing a session), also while the
  /// pool is closing.
  @override
  _Job _enqueueInternal(_Op op, Duration? timeout, Object? args) {
    final job = _Job(_nextId++, op, timeoutMs(timeout ?? timeouts._for(op)),
        -1, null, args, _callIdFor(op));
    if (_workers.isEmpty) {
      // Closed already: nobody would run it.
      job.fail(StateError('no porter worker left'));
      job.settle();
      return job;
    }
    _queue.add(job);
    _pump();
    return job;
  }

  void _cancel(_Job job) {
    if (job.done) return;
    if (_queue.remove(job)) {
      job.settle();
    } else if (job.callId != 0) {
      // Running: stop it in porterd too. The id was the pool's pick, so
      // this needs nothing from the worker, and it never waits.
      _cancelNowait(job.callId);
    }
    job.fail(_cancelled());
    _checkDrained();
  }

  static PorterCancelledException _cancelled() =>
      const PorterCancelledException('PORTER_E_CANCELLED', 'cancelled');

  /// Hands queued calls to idle workers, oldest first. A request that
  /// cannot be sent (an argument holding an unsendable object) fails its
  /// call and frees the worker at once.
  void _pump() {
    while (_queue.isNotEmpty) {
      _Worker? idle;
      for (final w in _workers) {
        if (w.idle) {
          idle = w;
          break;
        }
      }
      if (idle == null) break;
      final job = _queue.removeFirst();
      idle.job = job;
      try {
        idle.port!.send(_Request(job.id, job.op, job.timeoutMs, job.delayMs,
            job.payload, job.args, job.callId));
      } catch (e, st) {
        idle.job = null;
        job.fail(ArgumentError('cannot send this call to a porter worker: $e'), st);
        job.settle();
      }
    }
    _checkDrained();
  }

  void _checkDrained() {
    final d = _drained;
    if (d == null || d.isCompleted) return;
    if (_queue.isEmpty && !_workers.any((w) => w.job != null)) d.complete();
  }
}
