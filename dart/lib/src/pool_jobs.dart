// The pool's bookkeeping: cancel tokens, default timeouts, queued and
// running calls, and its view of each worker isolate.
part of 'pool.dart';

/// Cancels calls made through a [PorterPool] (named so that it does not
/// clash with package:dio's `CancelToken` in the same file).
///
/// A call still waiting for a worker is dropped. A call already running
/// completes its `Future` with a [PorterCancelledException] at once, and
/// the daemon is asked to stop it; its worker is free again as soon as the
/// daemon has stopped the work. One token may cancel any number of calls;
/// each call stops listening to it when it ends, so a long-lived token
/// does not collect listeners.
final class PorterCancelToken {
  final Completer<void> _done = Completer<void>();
  final Set<void Function()> _listeners = <void Function()>{};

  /// Whether [cancel] was called.
  bool get isCancelled => _done.isCompleted;

  /// Completes when [cancel] is called.
  Future<void> get whenCancelled => _done.future;

  /// Cancels every call made with this token; later calls with it fail at
  /// once. Calling it again does nothing.
  void cancel() {
    if (_done.isCompleted) return;
    _done.complete();
    final all = List.of(_listeners);
    _listeners.clear();
    for (final f in all) {
      f();
    }
  }

  /// Calls [f] on [cancel]; the returned function stops that.
  void Function() _listen(void Function() f) {
    _listeners.add(f);
    return () => _listeners.remove(f);
  }

  /// Listeners registered now (calls and streams still running).
  int get listenerCount => _listeners.length;
}

/// The timeouts a pool uses for calls that give none. null means
/// libporter's default (5 s). A database query often needs more: set
/// [query] for the pool rather than on every call.
final class PorterTimeouts {
  /// Queries, query streams (each pull), transactions' statements, and
  /// session opens and closes.
  final Duration? query;

  /// HTTP requests, each pull of an HTTP stream, and each step of an
  /// upload (open, each write, the wait for the head).
  final Duration? http;

  /// File operations, and each pull of a file stream.
  final Duration? file;

  /// Pings, stats and batches.
  final Duration? other;

  const PorterTimeouts({this.query, this.http, this.file, this.other});

  /// libporter's default for everything (5 s).
  static const PorterTimeouts defaults = PorterTimeouts();

  Duration? _for(_Op op) => switch (op) {
        _Op.dbOpen ||
        _Op.dbClose ||
        _Op.query ||
        _Op.cursorOpen ||
        _Op.cursorRead =>
          query,
        _Op.http ||
        _Op.httpOpen ||
        _Op.httpRead ||
        _Op.uploadOpen ||
        _Op.uploadWrite ||
        _Op.uploadFinish =>
          http,
        _Op.fileRead ||
        _Op.fileReadInto ||
        _Op.fileWrite ||
        _Op.fileDelete ||
        _Op.fileStat ||
        _Op.fileList ||
        _Op.fileMkdir ||
        _Op.fileRename ||
        _Op.fileCopy ||
        _Op.readerOpen ||
        _Op.readerRead ||
        _Op.watchOpen ||
        _Op.watchRead =>
          file,
        _Op.ping || _Op.stats || _Op.batch => other,
      };
}

/// A call waiting for, or running on, a worker.
final class _Job {
  final int id;
  final _Op op;
  final int timeoutMs;
  final int delayMs;
  final Uint8List? payload;
  final Object? args;
  final Completer<Object?> completer = Completer<Object?>();

  /// Completes when no worker runs this job any more (answered, dropped
  /// from the queue, its send failed, or its worker died), even when
  /// [completer] completed earlier because the job was cancelled. A
  /// stream's handle must not be closed while a worker still uses it.
  final Completer<void> settled = Completer<void>();

  /// A successful answer that arrived after the job was cancelled (a
  /// stream opened after all must still be closed).
  Object? lateResult;

  /// The native call id the pool picked for it (0: a stream read, which
  /// uses its open's id), so that a cancel can name it at once, whether
  /// the call is running or not yet.
  final int callId;

  /// Stops listening to the call's cancel token.
  void Function()? unlisten;

  /// What must stay reachable while a worker may run this job, and is not
  /// sent to it: the [PorterBuffer] whose native memory a read into it
  /// writes (the worker gets its address only). The pool holds the job,
  /// in its queue or as its worker's [_Worker.job], until the job has
  /// settled, which is exactly as long as a worker may use the memory;
  /// so the buffer's memory, which its typed list frees when collected,
  /// outlives every write into it by construction, whatever the caller's
  /// own references do across an `await`.
  Object? keepAlive;

  _Job(this.id, this.op, this.timeoutMs, this.delayMs, this.payload, this.args,
      this.callId);

  void settle() {
    unlisten?.call();
    unlisten = null;
    keepAlive = null;
    if (!settled.isCompleted) settled.complete();
  }

  bool get done => completer.isCompleted;

  void fail(Object error, [StackTrace? st]) {
    if (!done) completer.completeError(error, st);
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
