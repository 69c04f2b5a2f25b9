// Streams of a pool: a native handle (cursor, HTTP stream, file reader)
// that lives in porterd and in native memory, pulled chunk by chunk by
// whichever worker is free.
part of 'pool.dart';

/// One native handle a pool stream owns: what closes it, and the token of
/// the stream's finalizer (nothing in it refers back to the stream).
final class _Drop {
  final PorterPool pool;

  /// The op that opened it: what frees it depends on its kind.
  final _Op openOp;
  final int address;
  _Drop(this.pool, this.openOp, this.address);
}

/// The safety net for a stream dropped unclosed (never listened to, a
/// subscription never cancelled): a Dart [Finalizer] on the pool's
/// isolate, which frees the handle with its non-waiting free through the
/// pool's record of it (a NativeFinalizer would free it behind the pool's
/// back, and the pool's close would then free it twice).
final Finalizer<_Drop> _dropFinalizer = Finalizer((d) => d.pool._freeHandle(d));

/// One pool stream. States: not opened; opening (an open job runs);
/// open ([_address] set; at most one read job at a time, started only
/// while the listener wants more); done (the controller is closed, and the
/// handle is closed once no job uses it).
final class _HandleStream<T> {
  final PorterPool _pool;
  final _Op _openOp;
  final Object _openArgs;
  final _Op _readOp;

  /// What errors name: the URL, the path ("" for queries).
  final String _name;
  final Duration? _timeout;
  final PorterCancelToken? _cancel;

  /// The native address in what the open answered.
  final int Function(Object? opened) addressOf;

  /// Called with what the open answered, once, before the first pull.
  final void Function(Object? opened)? onOpen;

  /// The chunk in what a read answered; null at the end.
  final T? Function(Object? answer) chunkOf;

  /// Called once when the stream ends: with the error, if any.
  final void Function(Object? error, StackTrace? st)? onEnd;

  late final StreamController<T> _ctl = StreamController<T>(
      onListen: _onListen, onResume: _pull, onCancel: _finish);
  bool _openOnListen = false;
  bool _opened = false;
  bool _done = false;
  int? _address;
  _Drop? _drop;
  _Job? _running;

  /// The open's call id: every read uses it, so cancelling it stops the
  /// read in flight.
  int _openCallId = 0;
  void Function()? _unlisten;

  /// The id that stops this stream's steps in porterd, when it is not the
  /// open's own (an upload's finish: its reads carry the upload's id).
  final int? _cancelId;

  /// Called once the open's job has settled (no worker uses what it was
  /// given any more), whatever its outcome.
  final void Function()? _onOpenSettled;

  /// Bounds each read when it is not [_timeout] (a watch's short polls).
  final Duration? _readTimeout;

  /// For streams whose reads may find nothing yet (a watch): whether a
  /// chunk is such an empty answer, and how long to wait before the next
  /// pull, holding no worker meanwhile.
  final bool Function(T chunk)? _isIdle;
  final Duration _idlePoll;
  Timer? _idleTimer;

  _HandleStream(this._pool, this._openOp, this._openArgs, this._readOp,
      this._name, this._timeout, this._cancel,
      {required this.addressOf,
      required this.chunkOf,
      this.onOpen,
      this.onEnd,
      int? cancelId,
      void Function()? onOpenSettled,
      Duration? readTimeout,
      bool Function(T chunk)? isIdle,
      Duration idlePoll = Duration.zero})
      : _cancelId = cancelId,
        _onOpenSettled = onOpenSettled,
        _readTimeout = readTimeout,
        _isIdle = isIdle,
        _idlePoll = idlePoll;

  /// The chunks; with [openOnListen] the handle is opened when the stream
  /// is listened to, else by [open].
  Stream<T> stream({bool openOnListen = false}) {
    _openOnListen = openOnListen;
    return _ctl.stream;
  }

  void _onListen() {
    if (_openOnListen) {
      open();
    } else {
      _pull();
    }
  }

  /// Starts the open (once).
  void open() {
    if (_opened) return;
    _opened = true;
    final c = _cancel;
    if (c != null && !c.isCancelled) {
      // _finish stops a read in flight in porterd; the open's own job is
      // cancelled through its token registration.
      _unlisten = c._listen(() => unawaited(_finish(PorterPool._cancelled())));
    }
    final _Job job;
    try {
      job = _pool._enqueue(_openOp, _timeout, _cancel, args: _openArgs);
    } catch (e, st) {
      _onOpenSettled?.call();
      unawaited(_finish(e, st));
      return;
    }
    _running = job;
    _openCallId = _cancelId ?? job.callId;
    final settled = _onOpenSettled;
    if (settled != null) unawaited(job.settled.future.then((_) => settled()));
    unawaited(job.completer.future.then((v) {
      _running = null;
      _adopt(addressOf(v));
      if (_done) {
        _closeNow();
        return;
      }
      onOpen?.call(v);
      _pull();
    }, onError: (Object e, StackTrace st) {
      // An open that succeeded after its cancel: close what it opened.
      unawaited(job.settled.future.then((_) {
        final opened = job.lateResult;
        if (opened != null) {
          _adopt(addressOf(opened));
          _closeNow();
        }
      }));
      unawaited(_finish(e, st));
    }));
  }

  void _adopt(int address) {
    final d = _drop = _pool._own(_openOp, address);
    _address = address;
    _dropFinalizer.attach(this, d, detach: this);
  }

  /// Pulls the next chunk when the listener wants one and none is coming.
  void _pull() {
    final a = _address;
    if (_done || _running != null || _idleTimer != null || a == null) return;
    if (!_ctl.hasListener || _ctl.isPaused) return;
    final _Job job;
    try {
      // No cancel token on reads: the stream's own listener ends the
      // stream at once and cancels the open's id, which the read in
      // flight uses.
      job = _pool._enqueue(_readOp, _readTimeout ?? _timeout, null,
          args: _HandleArgs(a, _name));
    } catch (e, st) {
      unawaited(_finish(e, st));
      return;
    }
    _running = job;
    unawaited(job.completer.future.then((v) {
      _running = null;
      if (_done) return;
      final T? chunk;
      try {
        chunk = chunkOf(v);
      } catch (e, st) {
        unawaited(_finish(e, st));
        return;
      }
      if (chunk == null) {
        unawaited(_finish());
        return;
      }
      final idle = _isIdle;
      if (idle != null && idle(chunk)) {
        // Nothing yet: ask again later, holding no worker meanwhile.
        _idleTimer = Timer(_idlePoll, () {
          _idleTimer = null;
          _pull();
        });
        return;
      }
      _ctl.add(chunk);
      _pull();
    }, onError: (Object e, StackTrace st) => _finish(e, st)));
  }

  /// Ends the stream (with [error] when given) and closes the handle once
  /// no worker uses it.
  Future<void> _finish([Object? error, StackTrace? st]) async {
    if (_done) return;
    _done = true;
    _idleTimer?.cancel();
    _idleTimer = null;
    _unlisten?.call();
    _unlisten = null;
    if (error != null) _ctl.addError(error, st);
    unawaited(_ctl.close());
    onEnd?.call(error, st);
    final r = _running;
    if (r != null && !r.settled.isCompleted) {
      // A read in flight (or the open) would run to its timeout for
      // nothing: stop it in porterd. Reads carry the open's id; the free
      // below does not, so the cancel cannot refuse it.
      if (_openCallId != 0) _pool._cancelNowait(_openCallId);
      await r.settled.future;
    }
    _closeNow();
  }

  void _closeNow() {
    final d = _drop;
    if (d == null) return;
    _address = null;
    _drop = null;
    _dropFinalizer.detach(this);
    _pool._freeHandle(d);
  }

  /// Aborts: ends the stream without an error and closes the handle.
  void cancel() => unawaited(_finish());
}
