// The asynchronous API: a bounded pool of worker isolates making blocking
// calls, so the isolate that uses the pool never blocks.
import 'dart:async';
import 'dart:collection';
import 'dart:convert';
import 'dart:ffi';
import 'dart:io' show Platform, sleep;
import 'dart:isolate';
import 'dart:math' show max, min;
import 'dart:typed_data';

import 'package:ffi/ffi.dart' show calloc;

import 'batch.dart';
import 'bindings.g.dart';
import 'db.dart';
import 'errors.dart';
import 'files.dart';
import 'http.dart';
import 'library.dart';
import 'stats.dart';
import 'sync.dart';

/// Cancels calls made through a [PorterPool].
///
/// A call still waiting for a worker is dropped. A call already running
/// completes its `Future` with a [PorterCancelledException] at once, and
/// the daemon is asked to stop it (`porter_cancel`, sent from a short-lived
/// helper isolate so the calling isolate never blocks); its worker is free
/// again as soon as the daemon has stopped the work. One token may cancel
/// any number of calls.
final class CancelToken {
  final Completer<void> _cancelled = Completer<void>();

  /// Whether [cancel] was called.
  bool get isCancelled => _cancelled.isCompleted;

  /// Completes when [cancel] is called.
  Future<void> get whenCancelled => _cancelled.future;

  /// Cancels every call made with this token; later calls with it fail at
  /// once. Calling it again does nothing.
  void cancel() {
    if (!_cancelled.isCompleted) _cancelled.complete();
  }
}

/// The calls a worker knows how to make.
enum _Op {
  ping,
  stats,
  batch,
  dbOpen,
  dbClose,
  query,
  cursorOpen,
  cursorNext,
  cursorClose,
  fileRead,
  fileWrite,
  fileDelete,
  fileStat,
  fileList,
  http,
  httpStream,
}

/// The arguments of a query or a streamed query (plain, sendable values).
final class _QueryArgs {
  final String sql;
  final int session;
  final String? conninfo;
  final List<Object?> params;
  final int chunkRows;
  const _QueryArgs(
      this.sql, this.session, this.conninfo, this.params, this.chunkRows);
}

/// The arguments of a file operation.
final class _FileArgs {
  final String path;
  final String? root;
  final int offset;
  final int? length;
  final Uint8List? data;
  final int flags;
  final int? mode;
  final bool directory;
  const _FileArgs(this.path, this.root,
      {this.offset = 0,
      this.length,
      this.data,
      this.flags = 0,
      this.mode,
      this.directory = false});
}

/// The arguments of an HTTP request (plain, sendable values).
final class _HttpArgs {
  final String method;
  final String url;
  final Map<String, String> headers;
  final Uint8List? body;
  final HttpOptions? options;

  /// Streams: the address of the native control block the pool and the
  /// worker share ([_ctlTaken], [_ctlStop]), how many chunks may wait
  /// untaken, and how long the worker waits for the listener.
  final int control;
  final int window;
  final int idleMs;
  const _HttpArgs(this.method, this.url, this.headers, this.body, this.options,
      [this.control = 0, this.window = 0, this.idleMs = 0]);
}

/// Slots of a stream's control block (native memory, shared by the pool's
/// isolate and the worker's): chunks the listener has taken, and non-zero
/// once the listener is gone.
const int _ctlTaken = 0;
const int _ctlStop = 1;

/// Something a worker produced for job [id] before its [_Reply]: a
/// stream's head ([HttpResponse]) or one chunk ([TransferableTypedData]).
final class _Data {
  final int worker;
  final int id;
  final Object value;
  const _Data(this.worker, this.id, this.value);
}

/// A request from the pool to a worker.
final class _Request {
  final int id;
  final _Op op;
  final int timeoutMs;
  final int delayMs;
  final Uint8List? payload;
  final PorterBatch? batch;
  final Object? args;
  const _Request(this.id, this.op, this.timeoutMs, this.delayMs, this.payload,
      this.batch, this.args);
}

/// A worker telling the pool the native id of the call it is about to make
/// for job [id], so a cancel can name it.
final class _Started {
  final int worker;
  final int id;
  final int callId;
  const _Started(this.worker, this.id, this.callId);
}

/// A worker's answer: [code] 0 with [result], or a failure.
final class _Reply {
  final int worker;
  final int id;
  final Object? result;
  final int code;
  final String name;
  final String message;

  /// The worker's exception itself when it carries more than a code
  /// (SQLSTATE, file error kind): exceptions are plain sendable objects.
  final PorterException? error;
  const _Reply(this.worker, this.id, this.result,
      [this.code = 0, this.name = '', this.message = '', this.error]);
}

/// A worker telling the pool where to send requests.
final class _Ready {
  final int worker;
  final SendPort port;
  const _Ready(this.worker, this.port);
}

/// A worker that could not start (libporter missing, ...).
final class _Failed {
  final int worker;
  final String error;
  const _Failed(this.worker, this.error);
}

/// What a worker isolate is started with.
final class _Start {
  final int worker;
  final String? libraryPath;
  final SendPort replies;
  const _Start(this.worker, this.libraryPath, this.replies);
}

/// A call waiting for, or running on, a worker.
final class _Job {
  final int id;
  final _Op op;
  final int timeoutMs;
  final int delayMs;
  final Uint8List? payload;
  final PorterBatch? batch;
  final Object? args;
  final Completer<Object?> completer = Completer<Object?>();

  /// Completes when no worker runs this job any more (answered, dropped
  /// from the queue, or its worker died), even when [completer] completed
  /// earlier because the job was cancelled. A cursor must not be closed
  /// while a worker still pulls from it.
  final Completer<void> settled = Completer<void>();

  /// A successful answer that arrived after the job was cancelled (a
  /// cursor opened after all must still be closed).
  Object? lateResult;

  /// The native call id, once the worker has reported it.
  int? callId;

  /// Cancelled while running: the daemon must be told once [callId] is
  /// known.
  bool cancelRequested = false;

  /// Streams: receives what the worker sends before its reply.
  void Function(Object value)? onData;

  _Job(this.id, this.op, this.timeoutMs, this.delayMs, this.payload,
      [this.batch, this.args]);

  void settle() {
    if (!settled.isCompleted) settled.complete();
  }

  bool get done => completer.isCompleted;

  void fail(Object error) {
    if (!done) completer.completeError(error);
  }
}

/// The pool's view of one worker isolate.
final class _Worker {
  final int index;
  final Completer<void> ready = Completer<void>();
  final RawReceivePort exitPort = RawReceivePort();
  final RawReceivePort errorPort = RawReceivePort();
  Isolate? isolate;
  SendPort? port;
  _Job? job;
  String? lastError;
  _Worker(this.index);

  bool get idle => port != null && job == null;

  void closePorts() {
    exitPort.close();
    errorPort.close();
  }
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
/// Create it once, at start-up, from the isolate that will use it (on
/// Flutter, the UI isolate): `await PorterPool.spawn()`.
final class PorterPool {
  /// The most workers a pool may have.
  static const int maxSize = 16;

  /// Set once this isolate has reset libporter's client instance; statics
  /// start over on a hot restart, so the first pool of the new run resets.
  static bool _resetDone = false;

  /// The library path workers open (see [openPorterLibrary]).
  final String? libraryPath;

  final List<_Worker> _workers = [];
  final Queue<_Job> _queue = Queue<_Job>();

  /// Stops the HTTP streams running now (so [close] need not wait for
  /// their listeners).
  final Set<void Function()> _streamStops = {};
  final RawReceivePort _replies = RawReceivePort();
  Completer<void>? _drained;
  Future<void>? _closing;
  int _nextId = 1;
  bool _closed = false;

  PorterPool._(this.libraryPath) {
    _replies.handler = _onMessage;
  }

  /// A default size: the processor count, between 2 and 4.
  static int get defaultSize => min(4, max(2, Platform.numberOfProcessors));

  /// Starts a pool of [size] workers (1..[maxSize]; default [defaultSize]).
  ///
  /// With [reset] (the default) the first pool spawned in an isolate's run
  /// calls `porter_reset()` first, so after a hot restart the daemon
  /// releases what the previous run left open. Pass `reset: false` when
  /// other isolates already use porter and must keep their sessions.
  ///
  /// Throws when a worker cannot start (for example when libporter cannot
  /// be opened); no worker is left running then.
  static Future<PorterPool> spawn(
      {int? size, String? libraryPath, bool reset = true}) async {
    final n = size ?? defaultSize;
    if (n < 1 || n > maxSize) {
      throw RangeError.range(n, 1, maxSize, 'size');
    }
    if (reset && !_resetDone) {
      // porter_reset never blocks, so this is safe on the UI isolate.
      Porter(libraryPath: libraryPath).reset();
      _resetDone = true;
    }
    final pool = PorterPool._(libraryPath);
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

  /// Sends a ping carrying [payload] and waits for the echo (after [delay]
  /// when given); see [Porter.ping].
  Future<void> ping(
          {Uint8List? payload,
          Duration? delay,
          Duration? timeout,
          CancelToken? cancel}) =>
      _submit(_Op.ping, timeout, payload, cancel, delay: delay).then((_) {});

  /// Runs [batch] on a worker; see [Porter.batch].
  Future<PorterBatchResult> batch(PorterBatch batch,
          {Duration? timeout, CancelToken? cancel}) =>
      _submit(_Op.batch, timeout, null, cancel, batch: batch)
          .then((v) => v as PorterBatchResult);

  /// The daemon's counters; see [Porter.stats].
  Future<PorterStats> stats({Duration? timeout, CancelToken? cancel}) =>
      _submit(_Op.stats, timeout, null, cancel).then((v) => v as PorterStats);

  // ---- PostgreSQL ----

  /// Opens a database session on a worker; see [Porter.dbOpen]. The
  /// [DbSession] may be used by any worker and any isolate afterwards.
  Future<DbSession> dbOpen(String conninfo,
          {Duration? timeout, CancelToken? cancel}) =>
      _submit(_Op.dbOpen, timeout, null, cancel, args: conninfo)
          .then((v) => v as DbSession);

  /// Closes [session]; see [Porter.dbClose].
  Future<void> dbClose(DbSession session, {Duration? timeout}) =>
      _submit(_Op.dbClose, timeout, null, null, args: session.id)
          .then((_) {});

  /// Runs a query on a worker; see [Porter.query]. Successive queries on
  /// one [session] may run on different workers (threads): the session
  /// lives in porterd, so its transaction carries over.
  Future<DbResult> query(String sql,
      {DbSession? session,
      String? conninfo,
      List<Object?> params = const [],
      Duration? timeout,
      CancelToken? cancel}) {
    if (session == null && (conninfo == null || conninfo.isEmpty)) {
      return Future.error(
          ArgumentError('a query needs a session or a conninfo'));
    }
    return _submit(_Op.query, timeout, null, cancel,
            args: _QueryArgs(sql, session?.id ?? 0, conninfo, params, 0))
        .then((v) => v as DbResult);
  }

  /// A streamed query as a [Stream] of row chunks (up to [chunkRows] rows
  /// each): the query starts when the stream is listened to, and each
  /// chunk is pulled from porterd only once the previous one was delivered
  /// and the subscription is not paused, so a slow listener slows the
  /// query down instead of filling memory. Each pull is bounded by
  /// [timeout]. Cancelling the subscription, or [cancel], closes the
  /// cursor and porterd cancels the query; [cancel] also ends the stream
  /// with a [PorterCancelledException]. An SQL error ends it with a
  /// [PorterDbException]. While a stream on a [session] is open, other
  /// calls on that session wait until it ends (calls on one session run one
  /// at a time): read it to the end or cancel it first.
  Stream<List<List<Object?>>> queryStream(String sql,
      {DbSession? session,
      String? conninfo,
      List<Object?> params = const [],
      int chunkRows = 1000,
      Duration? timeout,
      CancelToken? cancel}) {
    late final StreamController<List<List<Object?>>> ctl;
    _CursorGuard? guard;
    _Job? running;
    var done = false;

    Future<void> finish([Object? error, StackTrace? st]) async {
      if (done) return;
      done = true;
      if (error != null) ctl.addError(error, st);
      unawaited(ctl.close());
      // A worker may still be inside a pull or the open: close the cursor
      // only once nothing uses it.
      await running?.settled.future;
      final g = guard;
      guard = null;
      if (g != null) {
        g.release();
        await _closeCursor(g.address);
      }
    }

    void pull() {
      final g = guard;
      if (done || running != null || g == null || ctl.isPaused) return;
      final _Job job;
      try {
        job = _enqueue(_Op.cursorNext, timeout, null, cancel, args: g.address);
      } catch (e, st) {
        unawaited(finish(e, st));
        return;
      }
      running = job;
      unawaited(job.completer.future.then((v) {
        running = null;
        if (done) return;
        if (v == null) {
          unawaited(finish());
          return;
        }
        ctl.add(v as List<List<Object?>>);
        pull();
      }, onError: (Object e, StackTrace st) {
        // Cleared only once the worker is out of the call.
        unawaited(job.settled.future.then((_) => running = null));
        unawaited(finish(e, st));
      }));
    }

    void start() {
      if (session == null && (conninfo == null || conninfo.isEmpty)) {
        unawaited(
            finish(ArgumentError('a query needs a session or a conninfo')));
        return;
      }
      final _Job job;
      try {
        if (chunkRows < 1 || chunkRows > 100000) {
          throw RangeError.range(chunkRows, 1, 100000, 'chunkRows');
        }
        job = _enqueue(_Op.cursorOpen, timeout, null, cancel,
            args: _QueryArgs(sql, session?.id ?? 0, conninfo, params, chunkRows));
      } catch (e, st) {
        unawaited(finish(e, st));
        return;
      }
      running = job;
      unawaited(job.completer.future.then((v) {
        running = null;
        guard = _CursorGuard(porterBindings(path: libraryPath), v as int);
        if (done) {
          final g = guard!;
          guard = null;
          g.release();
          unawaited(_closeCursor(g.address));
          return;
        }
        pull();
      }, onError: (Object e, StackTrace st) {
        // A cursor opened after all (the open was cancelled while the
        // worker ran it) is closed when the worker's answer arrives.
        unawaited(job.settled.future.then((_) {
          running = null;
          final opened = job.lateResult;
          if (opened is int) unawaited(_closeCursor(opened));
        }));
        unawaited(finish(e, st));
      }));
    }

    ctl = StreamController<List<List<Object?>>>(
        onListen: start, onResume: pull, onCancel: () => finish());
    if (cancel != null) {
      unawaited(cancel.whenCancelled.then((_) => finish(_cancelled())));
    }
    return ctl.stream;
  }

  /// Closes a native cursor on a worker (best effort: the finalizer guard
  /// was released, so a failure here leaves it to porterd, which drops the
  /// stream when this process's connections close).
  Future<void> _closeCursor(int address) async {
    try {
      await _submit(_Op.cursorClose, null, null, null, args: address);
    } catch (_) {
      // The pool is closed: close it from a short-lived isolate, since the
      // close may block briefly and this isolate must not.
      await _closeCursorInIsolate(libraryPath, address);
    }
  }

  // ---- HTTP ----

  /// Performs an HTTP request on a worker; see [Porter.http]. Any HTTP
  /// status is a response ([HttpResponse.ensureSuccess] turns a non-2xx
  /// one into a [PorterHttpException]); failures to get one are
  /// [PorterHttpException]s. [cancel] stops the transfer in the daemon.
  Future<HttpResponse> http(String method, String url,
      {Map<String, String> headers = const {},
      Object? body,
      HttpOptions? options,
      Duration? timeout,
      CancelToken? cancel}) {
    try {
      checkHttpHeaders(headers);
      return _submit(_Op.http, timeout, null, cancel,
              args: _HttpArgs(method, url, Map.unmodifiable(headers),
                  httpBodyBytes(body), options))
          .then((v) => v as HttpResponse);
    } catch (e, st) {
      return Future.error(e, st);
    }
  }

  /// GETs [url] on a worker, following redirects; see [Porter.httpGet].
  Future<HttpResponse> httpGet(String url,
          {Map<String, String> headers = const {},
          HttpOptions? options,
          Duration? timeout,
          CancelToken? cancel}) =>
      http('GET', url,
          headers: headers, options: options, timeout: timeout, cancel: cancel);

  /// POSTs [json] (a String as it is, anything else through `jsonEncode`)
  /// with `Content-Type: application/json` on a worker; see
  /// [Porter.httpPostJson].
  Future<HttpResponse> httpPostJson(String url, Object? json,
      {Map<String, String> headers = const {},
      HttpOptions? options,
      Duration? timeout,
      CancelToken? cancel}) {
    final String text;
    try {
      text = json is String ? json : jsonEncode(json);
    } catch (e, st) {
      return Future.error(e, st);
    }
    return http('POST', url,
        headers: {'Content-Type': 'application/json', ...headers},
        body: text,
        options: options,
        timeout: timeout,
        cancel: cancel);
  }

  /// A streamed request on a worker: completes with the response head once
  /// the status and headers have arrived; its [PorterHttpStream.body] is a
  /// single-subscription [Stream] of the body's chunks, of any total size.
  ///
  /// Backpressure: the worker reads the next chunk from porterd only while
  /// fewer than [window] chunks wait for the listener (a paused or slow
  /// listener pauses the transfer, all the way to the HTTP peer). The
  /// worker keeps the whole stream on its own thread (it waits for the
  /// listener with a blocking sleep, never by returning to its event loop),
  /// which bounds how far ahead it reads; porterd itself would serve the
  /// reads from any thread.
  ///
  /// The stream holds one pool worker until it ends: listen to the body
  /// (or cancel its subscription, or [PorterHttpStream.cancel]) promptly. A
  /// listener that takes nothing for [idleLimit] ends the stream with a
  /// [PorterTimeoutException]. Each read from porterd is bounded by
  /// [timeout]. Cancelling the subscription aborts the transfer; [cancel]
  /// also ends the body with a [PorterCancelledException] at once (and
  /// stops an open still waiting for the head in the daemon); the worker
  /// closes the stream after the read it is in, if any.
  Future<PorterHttpStream> httpStream(String url,
      {String method = 'GET',
      Map<String, String> headers = const {},
      Object? body,
      HttpOptions? options,
      Duration? timeout,
      CancelToken? cancel,
      int window = 4,
      Duration idleLimit = const Duration(seconds: 60)}) {
    final _HttpArgs args;
    try {
      if (window < 1 || window > 1024) {
        throw RangeError.range(window, 1, 1024, 'window');
      }
      if (idleLimit.isNegative) {
        throw ArgumentError.value(idleLimit, 'idleLimit', 'must not be negative');
      }
      checkHttpHeaders(headers);
      args = _HttpArgs(method, url, Map.unmodifiable(headers),
          httpBodyBytes(body), options, 0, window, idleLimit.inMilliseconds);
    } catch (e, st) {
      return Future.error(e, st);
    }
    // Freed once no worker uses it any more (the job has settled).
    final ctl = calloc<Int64>(2);
    var ctlFreed = false;
    final head = Completer<PorterHttpStream>();
    final done = Completer<HttpResponse>();
    final pending = Queue<Uint8List>();
    var taken = 0;
    var ended = false;
    var listenerGone = false;
    Object? endError;
    StackTrace? endTrace;
    late final StreamController<Uint8List> sc;

    void stop() {
      if (!ctlFreed) ctl[_ctlStop] = 1;
    }

    void flush() {
      while (pending.isNotEmpty && sc.hasListener && !sc.isPaused) {
        sc.add(pending.removeFirst());
        taken++;
        if (!ctlFreed) ctl[_ctlTaken] = taken;
      }
      if (ended && pending.isEmpty && !sc.isClosed) {
        final e = endError;
        if (e != null) sc.addError(e, endTrace);
        unawaited(sc.close());
      }
    }

    sc = StreamController<Uint8List>(
        onListen: flush,
        onResume: flush,
        onCancel: () {
          listenerGone = true;
          stop();
          pending.clear();
        });

    final _Job job;
    try {
      job = _enqueue(_Op.httpStream, timeout, null, cancel,
          args: _HttpArgs(args.method, args.url, args.headers, args.body,
              args.options, ctl.address, args.window, args.idleMs));
    } catch (e, st) {
      calloc.free(ctl);
      return Future.error(e, st);
    }
    _streamStops.add(stop);
    job.onData = (Object v) {
      if (ended) return;
      if (v is HttpResponse) {
        if (!head.isCompleted) {
          head.complete(PorterHttpStream._(v, sc.stream, done.future, () {
            stop();
            if (!ended) {
              ended = true;
              pending.clear();
              flush();
            }
          }));
        }
      } else if (v is TransferableTypedData && !listenerGone) {
        pending.add(v.materialize().asUint8List());
        flush();
      }
    };
    if (cancel != null) {
      unawaited(cancel.whenCancelled.then((_) => stop()));
    }
    unawaited(job.settled.future.then((_) {
      ctlFreed = true;
      calloc.free(ctl);
      _streamStops.remove(stop);
    }));
    unawaited(job.completer.future.then((v) {
      if (!head.isCompleted) {
        head.completeError(
            StateError('the HTTP stream ended before its head arrived'));
      }
      if (!done.isCompleted) done.complete(v as HttpResponse? ?? _emptyHead(url));
      if (!ended) {
        ended = true;
        flush();
      }
    }, onError: (Object e, StackTrace st) {
      if (!done.isCompleted) {
        done.completeError(e, st);
        done.future.ignore();
      }
      if (!head.isCompleted) {
        head.completeError(e, st);
        return;
      }
      if (!ended) {
        ended = true;
        endError = e;
        endTrace = st;
        flush();
      }
    }));
    return head.future;
  }

  static HttpResponse _emptyHead(String url) => HttpResponse(
      status: 0, headers: const [], body: Uint8List(0), effectiveUrl: url);

  // ---- Files ----

  /// Reads a file on a worker; see [Porter.readFile].
  Future<Uint8List> readFile(String path,
          {String? root,
          int offset = 0,
          int? length,
          Duration? timeout,
          CancelToken? cancel}) =>
      _submit(_Op.fileRead, timeout, null, cancel,
              args: _FileArgs(path, root, offset: offset, length: length))
          .then((v) => v as Uint8List);

  /// Writes a file on a worker; see [Porter.writeFile].
  Future<void> writeFile(String path, Uint8List data,
          {String? root,
          FileWriteFlags flags = FileWriteFlags.replace,
          int? mode,
          Duration? timeout,
          CancelToken? cancel}) =>
      _submit(_Op.fileWrite, timeout, null, cancel,
          args: _FileArgs(path, root,
              data: data, flags: flags.bits, mode: mode)).then((_) {});

  /// Deletes a file (or an empty directory); see [Porter.deleteFile].
  Future<void> deleteFile(String path,
          {String? root, bool directory = false, Duration? timeout}) =>
      _submit(_Op.fileDelete, timeout, null, null,
              args: _FileArgs(path, root, directory: directory))
          .then((_) {});

  /// What a path is; see [Porter.statFile].
  Future<PorterFileInfo> statFile(String path,
          {String? root, Duration? timeout}) =>
      _submit(_Op.fileStat, timeout, null, null, args: _FileArgs(path, root))
          .then((v) => v as PorterFileInfo);

  /// A directory's entries; see [Porter.listDir].
  Future<List<PorterDirEntry>> listDir(String path,
          {String? root, Duration? timeout}) =>
      _submit(_Op.fileList, timeout, null, null, args: _FileArgs(path, root))
          .then((v) => v as List<PorterDirEntry>);

  /// Starts a new client instance (see [Porter.reset]): every worker's next
  /// call reconnects, and the daemon releases the old instance's state as
  /// its connections close. Never blocks.
  void reset() => Porter(libraryPath: libraryPath).reset();

  /// Stops taking calls, lets the queued and running ones finish, then
  /// stops the workers (each closes its thread's connection first). Every
  /// call of close() returns the same future.
  Future<void> close() => _closing ??= _close();

  Future<void> _close() async {
    _closed = true;
    for (final stop in List.of(_streamStops)) {
      stop();
    }
    if (_queue.isNotEmpty || _workers.any((w) => w.job != null)) {
      _drained = Completer<void>();
      _checkDrained();
      await _drained!.future;
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

  Future<void> _spawnWorker(int index) async {
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
      job.settle();
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
      _pump();
    } else if (msg is _Data) {
      final job = _worker(msg.worker)?.job;
      if (job == null || job.id != msg.id) return;
      job.onData?.call(msg.value);
    } else if (msg is _Started) {
      final job = _worker(msg.worker)?.job;
      if (job == null || job.id != msg.id) return;
      job.callId = msg.callId;
      if (job.cancelRequested) _cancelInDaemon(msg.callId);
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
    w.job?.fail(PorterException(porter_error.PORTER_E_INTERNAL,
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
  Future<Object?> _submit(
          _Op op, Duration? timeout, Uint8List? payload, CancelToken? cancel,
          {Duration? delay, PorterBatch? batch, Object? args}) =>
      Future<Object?>.sync(() => _enqueue(op, timeout, payload, cancel,
              delay: delay, batch: batch, args: args)
          .completer
          .future);

  /// Queues one call and returns its job; throws for argument errors, a
  /// closed pool and a cancelled token.
  _Job _enqueue(
      _Op op, Duration? timeout, Uint8List? payload, CancelToken? cancel,
      {Duration? delay, PorterBatch? batch, Object? args}) {
    if (_closed) throw StateError('PorterPool is closed');
    final ms = timeoutMs(timeout);
    if (delay != null && delay.isNegative) {
      throw ArgumentError.value(delay, 'delay', 'must not be negative');
    }
    // -1: no delay (plain ping); the worker clamps large values.
    final delayMs = delay == null ? -1 : delay.inMilliseconds;
    if (cancel != null && cancel.isCancelled) throw _cancelled();
    final job = _Job(_nextId++, op, ms, delayMs, payload, batch, args);
    _queue.add(job);
    if (cancel != null) {
      unawaited(cancel.whenCancelled.then((_) => _cancel(job)));
    }
    _pump();
    return job;
  }

  void _cancel(_Job job) {
    if (job.done) return;
    if (_queue.remove(job)) {
      job.settle();
    } else {
      // Running: stop it in the daemon too, now or once its id is known.
      job.cancelRequested = true;
      final id = job.callId;
      if (id != null) _cancelInDaemon(id);
    }
    job.fail(_cancelled());
    _checkDrained();
  }

  /// Sends porter_cancel for [callId] from a helper isolate: the call
  /// blocks (briefly), and this isolate must not. Best effort: the call's
  /// own deadline still bounds it if the cancel fails.
  void _cancelInDaemon(int callId) {
    unawaited(_cancelInIsolate(libraryPath, callId).catchError((Object _) {}));
  }

  static PorterCancelledException _cancelled() =>
      const PorterCancelledException('PORTER_E_CANCELLED', 'cancelled');

  /// Hands queued calls to idle workers, oldest first.
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
      idle.port!.send(_Request(job.id, job.op, job.timeoutMs, job.delayMs,
          job.payload, job.batch, job.args));
    }
    _checkDrained();
  }

  void _checkDrained() {
    final d = _drained;
    if (d == null || d.isCompleted) return;
    if (_queue.isEmpty && !_workers.any((w) => w.job != null)) d.complete();
  }
}

/// A worker isolate: makes one blocking call at a time on its thread's
/// connection and answers the pool.
void _workerMain(_Start start) {
  final porter = _openPorter(start);
  if (porter == null) return;
  final port = RawReceivePort();
  port.handler = (Object? msg) {
    if (msg is _Request) {
      // Reserve the call's id and report it before blocking, so the pool
      // can cancel the call while this isolate is inside it.
      final callId = porter.nextCallId();
      start.replies.send(_Started(start.worker, msg.id, callId));
      start.replies.send(_run(porter, start.worker, msg, start.replies));
    } else {
      // Asked to stop: release this thread's connection now rather than
      // when the VM retires the thread.
      porter.disconnectThread();
      port.close();
    }
  };
  start.replies.send(_Ready(start.worker, port.sendPort));
}

/// Runs porter_cancel in a new isolate. A top-level function, so the
/// closure sent to that isolate holds only [libraryPath] and [callId].
Future<void> _cancelInIsolate(String? libraryPath, int callId) =>
    Isolate.run(() {
      Porter(libraryPath: libraryPath)
          .cancel(callId, timeout: const Duration(seconds: 2));
    });

/// Runs porter_db_cursor_close in a new isolate (top-level, so the
/// closure holds only [libraryPath] and [address]).
Future<void> _closeCursorInIsolate(String? libraryPath, int address) =>
    Isolate.run(() {
      porterBindings(path: libraryPath)
          .porter_db_cursor_close(Pointer<porter_db_cursor>.fromAddress(address));
    });

/// Opens libporter in a worker; on failure tells the pool why and returns
/// null (the isolate then exits, having no open port).
Porter? _openPorter(_Start start) {
  try {
    return Porter(libraryPath: start.libraryPath);
  } catch (e) {
    start.replies.send(_Failed(start.worker, '$e'));
    return null;
  }
}

_Reply _run(Porter porter, int worker, _Request req, SendPort replies) {
  final timeout =
      req.timeoutMs == 0 ? null : Duration(milliseconds: req.timeoutMs);
  try {
    switch (req.op) {
      case _Op.ping:
        porter.ping(
            payload: req.payload,
            delay: req.delayMs < 0 ? null : Duration(milliseconds: req.delayMs),
            timeout: timeout);
        return _Reply(worker, req.id, null);
      case _Op.stats:
        return _Reply(worker, req.id, porter.stats(timeout: timeout));
      case _Op.batch:
        return _Reply(
            worker, req.id, porter.batch(req.batch!, timeout: timeout));
      case _Op.dbOpen:
        return _Reply(worker, req.id,
            porter.dbOpen(req.args as String, timeout: timeout));
      case _Op.dbClose:
        porter.dbClose(DbSession(req.args as int), timeout: timeout);
        return _Reply(worker, req.id, null);
      case _Op.query:
        final a = req.args as _QueryArgs;
        return _Reply(
            worker,
            req.id,
            porter.query(a.sql,
                session: a.session == 0 ? null : DbSession(a.session),
                conninfo: a.conninfo,
                params: a.params,
                timeout: timeout));
      case _Op.cursorOpen:
        final a = req.args as _QueryArgs;
        final cur = porter.queryCursor(a.sql,
            session: a.session == 0 ? null : DbSession(a.session),
            conninfo: a.conninfo,
            params: a.params,
            chunkRows: a.chunkRows,
            timeout: timeout);
        // The pool owns it from here (and guards it with its finalizer).
        return _Reply(worker, req.id, cur.release());
      case _Op.cursorNext:
        final part = DbCursor.adopt(porter.bindings, req.args as int)
            .next(req.timeoutMs);
        return _Reply(worker, req.id, part?.rows);
      case _Op.cursorClose:
        DbCursor.adopt(porter.bindings, req.args as int).close();
        return _Reply(worker, req.id, null);
      case _Op.fileRead:
        final a = req.args as _FileArgs;
        return _Reply(
            worker,
            req.id,
            porter.readFile(a.path,
                root: a.root,
                offset: a.offset,
                length: a.length,
                timeout: timeout));
      case _Op.fileWrite:
        final a = req.args as _FileArgs;
        porter.writeFile(a.path, a.data!,
            root: a.root,
            flags: FileWriteFlags.overwrite | _flags(a.flags),
            mode: a.mode,
            timeout: timeout);
        return _Reply(worker, req.id, null);
      case _Op.fileDelete:
        final a = req.args as _FileArgs;
        porter.deleteFile(a.path,
            root: a.root, directory: a.directory, timeout: timeout);
        return _Reply(worker, req.id, null);
      case _Op.fileStat:
        final a = req.args as _FileArgs;
        return _Reply(worker, req.id,
            porter.statFile(a.path, root: a.root, timeout: timeout));
      case _Op.fileList:
        final a = req.args as _FileArgs;
        return _Reply(worker, req.id,
            porter.listDir(a.path, root: a.root, timeout: timeout));
      case _Op.http:
        final a = req.args as _HttpArgs;
        return _Reply(
            worker,
            req.id,
            porter.http(a.method, a.url,
                headers: a.headers,
                body: a.body,
                options: a.options,
                timeout: timeout));
      case _Op.httpStream:
        return _Reply(worker, req.id,
            _runStream(porter, worker, req, replies, timeout));
    }
  } on PorterException catch (e) {
    return _Reply(worker, req.id, null, e.code, e.name, e.message, e);
  } catch (e) {
    return _Reply(worker, req.id, null, porter_error.PORTER_E_INTERNAL,
        'PORTER_E_INTERNAL', '$e');
  }
}

/// Runs a streamed request for the pool, all of it on this isolate's
/// current thread, never returning to the event loop until the stream is
/// closed: the worker is busy with the stream for its whole life, reading
/// at most a window ahead of the listener. Sends the head, then each chunk, as [_Data]; returns the final
/// head (with timings), or null when the listener went away first.
HttpResponse? _runStream(Porter porter, int worker, _Request req,
    SendPort replies, Duration? timeout) {
  final a = req.args as _HttpArgs;
  final ctl = Pointer<Int64>.fromAddress(a.control);
  final ms = timeoutMs(timeout);
  final s = porter.httpStream(a.url,
      method: a.method,
      headers: a.headers,
      body: a.body,
      options: a.options,
      timeout: timeout);
  try {
    replies.send(_Data(worker, req.id, s.response));
    var sent = 0;
    for (;;) {
      if (!_waitForListener(ctl, sent, a.window, a.idleMs)) return null;
      // A CancelToken reaches the daemon only for the open (whose call id
      // the pool has). Reads are not given ids of their own: a read often
      // makes no call (the first chunk came with the open; the end may
      // be known already), and an id reserved but unused would go to
      // this thread's next call, which a cancel of it would then refuse.
      // A cancelled stream stops at the next check of the control block,
      // after the current read (bounded by the timeout).
      final chunk = s.read(ms);
      if (chunk == null) return s.finalResponse();
      replies.send(
          _Data(worker, req.id, TransferableTypedData.fromList([chunk])));
      sent++;
    }
  } finally {
    s.close();
  }
}

/// Waits (sleeping on this thread) until the listener has taken enough
/// chunks that fewer than [window] of the [sent] ones wait. Returns false
/// when the listener is gone; throws [PorterTimeoutException] when it took
/// nothing for [idleMs].
bool _waitForListener(Pointer<Int64> ctl, int sent, int window, int idleMs) {
  var waited = 0;
  var step = 1;
  while (ctl[_ctlStop] == 0 && sent - ctl[_ctlTaken] >= window) {
    if (waited >= idleMs) {
      throw PorterTimeoutException('PORTER_E_TIMEOUT',
          'the HTTP stream\'s listener took no chunk for $idleMs ms');
    }
    sleep(Duration(milliseconds: step));
    waited += step;
    if (step < 20) step *= 2;
  }
  return ctl[_ctlStop] == 0;
}

/// Flags from their bits (the pool sends the bits between isolates).
FileWriteFlags _flags(int bits) {
  var f = FileWriteFlags.overwrite;
  for (final x in [
    FileWriteFlags.create,
    FileWriteFlags.truncate,
    FileWriteFlags.append,
    FileWriteFlags.exclusive,
    FileWriteFlags.atomic,
    FileWriteFlags.sync,
  ]) {
    if (bits & x.bits != 0) f = f | x;
  }
  return f;
}

/// The pool's claim on a native cursor held by one of its streams: if the
/// stream is dropped without being closed (an exception, a subscription
/// never cancelled), the finalizer closes the cursor when this object is
/// collected. A safety net only: streams close their cursor through a
/// worker as soon as they end or are cancelled.
final class _CursorGuard implements Finalizable {
  static NativeFinalizer? _finalizer;
  final int address;

  _CursorGuard(PorterBindings b, this.address) {
    final f = _finalizer ??=
        NativeFinalizer(b.addresses.porter_db_cursor_close.cast());
    f.attach(this, Pointer<Void>.fromAddress(address), detach: this);
  }

  /// The stream closes the cursor itself: the finalizer must not.
  void release() => _finalizer!.detach(this);
}

/// A streamed HTTP response from [PorterPool.httpStream].
final class PorterHttpStream {
  /// The head: status, headers, effective URL (an empty body; timings all
  /// zero, see [done]).
  final HttpResponse response;

  /// The body, chunk by chunk (single subscription). It ends with an error
  /// when the transfer fails ([PorterHttpException]), times out or is
  /// cancelled.
  final Stream<Uint8List> body;

  /// Completes with the head again, with its timings, once the body has
  /// been read to its end (or fails as the body does).
  final Future<HttpResponse> done;

  final void Function() _cancel;

  PorterHttpStream._(this.response, this.body, this.done, this._cancel);

  /// The HTTP status code.
  int get status => response.status;

  /// Aborts the transfer without reading the rest, whether or not the body
  /// is listened to; the body then ends (without an error).
  void cancel() => _cancel();
}
