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
import 'errors.dart';
import 'files.dart';
import 'http.dart';
import 'library.dart';
import 'stats.dart';
import 'sync.dart';

part 'pool_jobs.dart';
part 'pool_stream.dart';
part 'pool_worker.dart';

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
final class PorterPool {
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

  /// Sessions opened through this pool and not closed yet: [close] closes
  /// them (their transactions roll back).
  final Set<DbSession> _sessions = {};

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

  // ---- PostgreSQL ----

  /// Opens a database session on a worker; see [Porter.dbOpen]. The
  /// [DbSession] may be used by any worker and any isolate afterwards; the
  /// pool closes it at [close] if nobody did before.
  Future<DbSession> dbOpen(String conninfo,
      {Duration? timeout, PorterCancelToken? cancel}) async {
    final job = _enqueue(_Op.dbOpen, timeout, cancel, args: conninfo);
    // A session opened after the call was cancelled is still this pool's
    // to close.
    unawaited(job.settled.future.then((_) {
      final opened = job.lateResult;
      if (opened is DbSession) unawaited(_closeSession(opened));
    }));
    final s = await job.completer.future as DbSession;
    _sessions.add(s);
    return s;
  }

  /// Closes [session]; see [Porter.dbClose].
  Future<void> dbClose(DbSession session, {Duration? timeout}) {
    _sessions.remove(session);
    return _submit(_Op.dbClose, timeout, null, args: session.id).then((_) {});
  }

  /// Closes a session of the pool's own (a transaction's, one opened
  /// after its call was cancelled), also while the pool is closing.
  Future<void> _closeSession(DbSession s) async {
    _sessions.remove(s);
    try {
      await _result(_enqueueInternal(_Op.dbClose, null, s.id));
    } on Object {
      // Best effort: porterd closes a client's sessions once its
      // connections are gone (db-session-grace).
    }
  }

  /// Runs a query on a worker; see [Porter.query] and [DbParam] for the
  /// parameters (checked here: a bad one fails the future with an
  /// [ArgumentError] without reaching a worker). Successive queries on one
  /// [session] may run on different workers (threads): the session lives
  /// in porterd, so its transaction carries over.
  Future<DbResult> query(String sql,
      {DbSession? session,
      String? conninfo,
      List<Object?> params = const [],
      Duration? timeout,
      PorterCancelToken? cancel}) {
    try {
      return _submit(_Op.query, timeout, cancel,
              args: _queryArgs(sql, session, conninfo, params, 0))
          .then((v) => v as DbResult);
    } catch (e, st) {
      return Future.error(e, st);
    }
  }

  _QueryArgs _queryArgs(String sql, DbSession? session, String? conninfo,
      List<Object?> params, int chunkRows,
      [Duration? streamTimeout]) {
    if (session == null && (conninfo == null || conninfo.isEmpty)) {
      throw ArgumentError('a query needs a session or a conninfo');
    }
    return _QueryArgs(sql, session?.id ?? 0, conninfo,
        List.unmodifiable(encodeParams(params)), chunkRows, streamTimeout);
  }

  /// Runs [body] in a transaction and returns its result: `BEGIN` (or
  /// [begin], e.g. `BEGIN ISOLATION LEVEL SERIALIZABLE`), then `COMMIT`
  /// when [body] completes, or `ROLLBACK` when it throws, when [cancel]
  /// fires (its calls then fail with [PorterCancelledException], which
  /// this rethrows) or when the commit itself fails.
  ///
  /// The transaction runs on [session] when given, else on a session
  /// opened on [conninfo] for it and closed afterwards. Make every call of
  /// the transaction through `tx`: a call through the pool on another
  /// session, or a pooled one, is outside it. [timeout] bounds each
  /// statement (default: the pool's [PorterTimeouts.query]).
  ///
  /// ```dart
  /// final id = await pool.transaction((tx) async {
  ///   final r = await tx.query(
  ///       r'INSERT INTO notes (body) VALUES ($1) RETURNING id', params: ['hi']);
  ///   await tx.query(r'UPDATE counts SET n = n + 1 WHERE owner = $1',
  ///       params: ['me']);
  ///   return r.rows.single.getInt('id');
  /// }, conninfo: conninfo);
  /// ```
  Future<T> transaction<T>(Future<T> Function(PorterTransaction tx) body,
      {DbSession? session,
      String? conninfo,
      String begin = 'BEGIN',
      Duration? timeout,
      PorterCancelToken? cancel}) async {
    if (session == null && (conninfo == null || conninfo.isEmpty)) {
      throw ArgumentError('a transaction needs a session or a conninfo');
    }
    final own = session == null;
    final s = session ?? await dbOpen(conninfo!, timeout: timeout, cancel: cancel);
    try {
      await query(begin, session: s, timeout: timeout, cancel: cancel);
      final T result;
      try {
        result = await body(PorterTransaction._(this, s, timeout, cancel));
        if (cancel != null && cancel.isCancelled) throw _cancelled();
        await query('COMMIT', session: s, timeout: timeout);
      } catch (_) {
        // No token here: the rollback must run even when the token fired.
        // A failure of it leaves the session unusable, and closing it
        // (below, or porterd's cleanup) rolls back too.
        try {
          await query('ROLLBACK', session: s, timeout: timeout);
        } on Object {
          // The original failure is what the caller needs to see.
        }
        rethrow;
      }
      return result;
    } finally {
      if (own) await _closeSession(s);
    }
  }

  /// A streamed query as a [Stream] of row chunks (up to [chunkRows] rows
  /// each): the query starts when the stream is listened to, and each
  /// chunk is pulled from porterd by whichever worker is free, only once
  /// the previous one was delivered and while the subscription is not
  /// paused, so a slow listener slows the query down instead of filling
  /// memory, and holds no worker. Each pull is bounded by [timeout], and
  /// the whole stream by [streamTimeout] (counted from the open; null:
  /// none).
  /// Cancelling the subscription (`break` in `await for`), or [cancel],
  /// closes the cursor and porterd cancels the query; [cancel] also ends
  /// the stream with a [PorterCancelledException]. An SQL error ends it
  /// with a [PorterDbException]. While a stream on a [session] is open,
  /// other calls on that session wait until it ends (calls on one session
  /// run one at a time): read it to the end or cancel it first.
  Stream<List<Row>> queryStream(String sql,
      {DbSession? session,
      String? conninfo,
      List<Object?> params = const [],
      int chunkRows = 1000,
      Duration? timeout,
      Duration? streamTimeout,
      PorterCancelToken? cancel}) {
    final _QueryArgs args;
    try {
      checkChunkRows(chunkRows);
      streamMs(streamTimeout); // checked here, used by the worker
      args = _queryArgs(sql, session, conninfo, params, chunkRows,
          streamTimeout);
    } catch (e, st) {
      return Stream.error(e, st);
    }
    final h = _HandleStream<List<Row>>(this, _Op.cursorOpen, args,
        _Op.cursorRead, '', timeout, cancel,
        addressOf: (v) => v as int,
        chunkOf: (v) => v == null ? null : v as List<Row>);
    return h.stream(openOnListen: true);
  }

  // ---- HTTP ----

  /// Performs an HTTP request on a worker; see [Porter.http]. Headers are
  /// a [String] per name, or an [Iterable] of them for a name sent
  /// several times. Any HTTP status is a response
  /// ([PorterHttpResponse.ensureSuccess] turns a non-2xx one into a
  /// [PorterHttpException]); failures to get one are
  /// [PorterHttpException]s. [cancel] stops the transfer in the daemon.
  /// For `package:http` code, see [PorterHttpClient].
  Future<PorterHttpResponse> http(String method, Uri url,
      {Map<String, Object> headers = const {},
      Object? body,
      Duration? timeout,
      HttpOptions? options,
      PorterCancelToken? cancel}) {
    return _checkedRequest(
        headers,
        body,
        (h, b) => httpWith(method, url, h,
            body: b, options: options, timeout: timeout, cancel: cancel));
  }

  /// Runs [send] with [headers] and [body] checked and converted on this
  /// isolate ([requestHeaders], [httpBodyBytes]): a bad one fails the
  /// returned future with an [ArgumentError] and reaches no worker.
  static Future<R> _checkedRequest<R>(Map<String, Object> headers,
      Object? body, Future<R> Function(List<HttpHeader>, Uint8List?) send) {
    try {
      return send(requestHeaders(headers), httpBodyBytes(body));
    } catch (e, st) {
      return Future.error(e, st);
    }
  }

  /// [http] with the headers as a list in order (a name may repeat).
  Future<PorterHttpResponse> httpWith(
          String method, Uri url, List<HttpHeader> headers,
          {Uint8List? body,
          HttpOptions? options,
          Duration? timeout,
          PorterCancelToken? cancel}) =>
      _submit(_Op.http, timeout, cancel,
              args: _HttpArgs(
                  method, url, List.unmodifiable(headers), body, options))
          .then((v) => v as PorterHttpResponse);

  /// GETs [url] on a worker, following redirects; see [Porter.httpGet].
  Future<PorterHttpResponse> httpGet(Uri url,
          {Map<String, Object> headers = const {},
          HttpOptions? options,
          Duration? timeout,
          PorterCancelToken? cancel}) =>
      http('GET', url,
          headers: headers, options: options, timeout: timeout, cancel: cancel);

  /// POSTs [json] (a String as it is, anything else through `jsonEncode`)
  /// with `Content-Type: application/json` on a worker; see
  /// [Porter.httpPostJson].
  Future<PorterHttpResponse> httpPostJson(Uri url, Object? json,
      {Map<String, Object> headers = const {},
      HttpOptions? options,
      Duration? timeout,
      PorterCancelToken? cancel}) {
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

  /// A streamed request: completes with the response head once the status
  /// and headers have arrived; its [PorterHttpStream.body] is a
  /// single-subscription [Stream] of the body's chunks, of any total size.
  ///
  /// Each chunk is pulled from porterd by whichever worker is free, only
  /// while the listener wants more: a paused or slow listener pauses the
  /// transfer, all the way to the HTTP peer, and holds no worker (porterd
  /// aborts a stream nobody reads for its http-stream-idle time, 10 s by
  /// default). Each pull is bounded by [timeout], the whole stream by
  /// [HttpOptions.transferTimeout]. Cancelling the
  /// subscription, or [PorterHttpStream.cancel], aborts the transfer;
  /// [cancel] also ends the body with a [PorterCancelledException].
  Future<PorterHttpStream> httpStream(Uri url,
      {String method = 'GET',
      Map<String, Object> headers = const {},
      Object? body,
      HttpOptions? options,
      Duration? timeout,
      PorterCancelToken? cancel}) {
    return _checkedRequest(
        headers,
        body,
        (h, b) => httpStreamWith(method, url, h,
            body: b, options: options, timeout: timeout, cancel: cancel));
  }

  /// [httpStream] with the headers as a list in order.
  Future<PorterHttpStream> httpStreamWith(
      String method, Uri url, List<HttpHeader> headers,
      {Uint8List? body,
      HttpOptions? options,
      Duration? timeout,
      PorterCancelToken? cancel}) {
    final head = Completer<PorterHttpStream>();
    final done = Completer<PorterHttpResponse>();
    PorterHttpResponse? first;
    // Nobody need listen to done: an error there is also the body's.
    done.future.ignore();
    late final _HandleStream<Uint8List> h;
    h = _HandleStream<Uint8List>(
        this,
        _Op.httpOpen,
        _HttpArgs(method, url, List.unmodifiable(headers), body, options),
        _Op.httpRead,
        '$url',
        timeout,
        cancel,
        addressOf: (v) => (v as _HttpOpened).address,
        onOpen: (v) {
          final f = first = (v as _HttpOpened).head;
          head.complete(PorterHttpStream._(f, h.stream(), done.future, h.cancel));
        },
        chunkOf: (v) {
          if (v is _HttpEnd) {
            if (!done.isCompleted) done.complete(v.head);
            return null;
          }
          return (v as TransferableTypedData).materialize().asUint8List();
        },
        onEnd: (e, st) {
          // The end of the body completed done with the timed head
          // already; a cancel completes it with the head as it came.
          final f = first;
          if (!done.isCompleted) {
            if (e != null) {
              done.completeError(e, st);
            } else if (f != null) {
              done.complete(f);
            }
          }
          if (!head.isCompleted) {
            head.completeError(
                e ?? StateError('the HTTP stream ended before its head'), st);
          }
        });
    h.open();
    return head.future;
  }

  // ---- Files ----

  /// Reads a file on a worker; see [Porter.readFile].
  Future<Uint8List> readFile(String path,
          {String? root,
          int offset = 0,
          int? length,
          Duration? timeout,
          PorterCancelToken? cancel}) =>
      _submit(_Op.fileRead, timeout, cancel,
              args: _FileArgs(path, root, offset: offset, length: length))
          .then((v) => v as Uint8List);

  /// A file as a [Stream] of chunks (porterd's file-chunk-size each),
  /// pulled by whichever worker is free while the listener wants more;
  /// cancelling the subscription closes the reader. [streamTimeout]
  /// bounds the whole stream.
  Stream<Uint8List> readFileStream(String path,
      {String? root,
      int offset = 0,
      int? length,
      Duration? timeout,
      Duration? streamTimeout,
      PorterCancelToken? cancel}) {
    try {
      streamMs(streamTimeout);
    } catch (e, st) {
      return Stream.error(e, st);
    }
    final h = _HandleStream<Uint8List>(
        this,
        _Op.readerOpen,
        _FileArgs(path, root,
            offset: offset, length: length, streamTimeout: streamTimeout),
        _Op.readerRead,
        path,
        timeout,
        cancel,
        addressOf: (v) => v as int,
        chunkOf: (v) => v == null
            ? null
            : (v as TransferableTypedData).materialize().asUint8List());
    return h.stream(openOnListen: true);
  }

  /// Writes a file on a worker; see [Porter.writeFile].
  Future<void> writeFile(String path, Uint8List data,
          {String? root,
          FileWriteFlags flags = FileWriteFlags.replace,
          int? mode,
          Duration? timeout,
          PorterCancelToken? cancel}) =>
      _submit(_Op.fileWrite, timeout, cancel,
          args: _FileArgs(path, root,
              data: data, flags: flags, mode: mode)).then((_) {});

  /// Deletes a file (or an empty directory); see [Porter.deleteFile].
  Future<void> deleteFile(String path,
          {String? root, bool directory = false, Duration? timeout}) =>
      _submit(_Op.fileDelete, timeout, null,
              args: _FileArgs(path, root, directory: directory))
          .then((_) {});

  /// What a path is; see [Porter.statFile].
  Future<PorterFileInfo> statFile(String path,
          {String? root, bool followLinks = true, Duration? timeout}) =>
      _submit(_Op.fileStat, timeout, null,
              args: _FileArgs(path, root, follow: followLinks))
          .then((v) => v as PorterFileInfo);

  /// Creates a directory; see [Porter.createDirectory].
  Future<void> createDirectory(String path,
          {String? root, bool recursive = false, int? mode, Duration? timeout}) =>
      _submit(_Op.fileMkdir, timeout, null,
              args: _FileArgs(path, root, recursive: recursive, mode: mode))
          .then((_) {});

  /// Renames (moves) a file or directory; see [Porter.renameFile].
  Future<void> renameFile(String from, String to,
          {String? root, bool replace = true, Duration? timeout}) =>
      _submit(_Op.fileRename, timeout, null,
              args: _FileArgs(from, root, to: to, replace: replace))
          .then((_) {});

  /// Copies a regular file; completes with the bytes copied. See
  /// [Porter.copyFile].
  Future<int> copyFile(String from, String to,
          {String? root, bool replace = true, Duration? timeout}) =>
      _submit(_Op.fileCopy, timeout, null,
              args: _FileArgs(from, root, to: to, replace: replace))
          .then((v) => v as int);

  /// A directory's entries; see [Porter.listDir].
  Future<List<PorterDirEntry>> listDir(String path,
          {String? root, Duration? timeout}) =>
      _submit(_Op.fileList, timeout, null, args: _FileArgs(path, root))
          .then((v) => v as List<PorterDirEntry>);

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
  Future<Object?> _submit(_Op op, Duration? timeout, PorterCancelToken? cancel,
          {Uint8List? payload, Duration? delay, Object? args}) =>
      Future<Object?>.sync(() => _enqueue(op, timeout, cancel,
              payload: payload, delay: delay, args: args)
          .completer
          .future);

  /// Queues one call and returns its job; throws for argument errors, a
  /// closed pool and a cancelled token.
  _Job _enqueue(_Op op, Duration? timeout, PorterCancelToken? cancel,
      {Uint8List? payload, Duration? delay, Object? args}) {
    if (_closed) throw StateError('PorterPool is closed');
    if (delay != null && delay.isNegative) {
      throw ArgumentError.value(delay, 'delay', 'must not be negative');
    }
    if (cancel != null && cancel.isCancelled) throw _cancelled();
    // -1: no delay (plain ping); the worker clamps large values.
    final job = _Job(_nextId++, op, timeoutMs(timeout ?? timeouts._for(op)),
        delay == null ? -1 : delay.inMilliseconds, payload, args, _callIdFor(op));
    if (cancel != null) job.unlisten = cancel._listen(() => _cancel(job));
    _queue.add(job);
    _pump();
    return job;
  }

  /// A new native call id for a call of [op], picked here so a cancel can
  /// name it whether or not a worker runs it yet. Stream reads get 0: they
  /// use their open's id.
  int _callIdFor(_Op op) => switch (op) {
        _Op.cursorRead || _Op.httpRead || _Op.readerRead => 0,
        _ => _b.porter_call_id_new(),
      };

  /// Sends a cancel of [callId] without waiting (libporter's background
  /// thread does). Best effort: the call's own deadline still bounds it.
  void _cancelNowait(int callId) => _b.porter_cancel_nowait(callId);

  /// Queues a call of the pool's own (closing a session), also while the
  /// pool is closing.
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

/// The calls of one transaction ([PorterPool.transaction]): each runs on
/// the transaction's session, with its timeout and cancel token.
final class PorterTransaction {
  final PorterPool _pool;

  /// The session the transaction runs on.
  final DbSession session;
  final Duration? _timeout;
  final PorterCancelToken? _cancel;

  PorterTransaction._(this._pool, this.session, this._timeout, this._cancel);

  /// [PorterPool.query] in the transaction.
  Future<DbResult> query(String sql,
          {List<Object?> params = const [], Duration? timeout}) =>
      _pool.query(sql,
          session: session,
          params: params,
          timeout: timeout ?? _timeout,
          cancel: _cancel);

  /// [PorterPool.queryStream] in the transaction.
  Stream<List<Row>> queryStream(String sql,
          {List<Object?> params = const [],
          int chunkRows = 1000,
          Duration? timeout}) =>
      _pool.queryStream(sql,
          session: session,
          params: params,
          chunkRows: chunkRows,
          timeout: timeout ?? _timeout,
          cancel: _cancel);
}

/// A streamed HTTP response from [PorterPool.httpStream].
final class PorterHttpStream {
  /// The head: status, headers, effective URL (an empty body; timings all
  /// zero, see [done]).
  final PorterHttpResponse response;

  /// The body, chunk by chunk (single subscription). It ends with an error
  /// when the transfer fails ([PorterHttpException]), times out or is
  /// cancelled.
  final Stream<Uint8List> body;

  /// Completes with the head again, with its timings, once the body has
  /// been read to its end; with the head as it came (no timings) when the
  /// body was cancelled first; with the body's error when it failed.
  final Future<PorterHttpResponse> done;

  final void Function() _cancel;

  PorterHttpStream._(this.response, this.body, this.done, this._cancel);

  /// The HTTP status code.
  int get status => response.status;

  /// Aborts the transfer without reading the rest, whether or not the body
  /// is listened to; the body then ends (without an error).
  void cancel() => _cancel();
}
