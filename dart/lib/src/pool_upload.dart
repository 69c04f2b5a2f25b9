// Streamed request bodies through the pool: the native upload a pool owns
// from its open until its finish ran, and the pump that writes a body
// Stream as porterd takes it.
part of 'pool.dart';

/// Pieces larger than this are not buffered: the body's subscription is
/// paused until the write in flight is done (porterd takes at most 1 MiB
/// at a time; libporter cuts larger writes).
const int _uploadPiece = 1 << 20;

/// One upload of a pool ([PorterPool.httpUpload]).
final class _Upload {
  final PorterPool _pool;
  final _Drop _drop;

  /// The open's call id: the writes, the finish and the response's reads
  /// carry it, so cancelling it stops whichever is in flight.
  final int callId;
  final String _url;
  final Duration? _timeout;
  final PorterCancelToken? _cancel;

  _Upload._(this._pool, this._drop, this.callId, this._url, this._timeout,
      this._cancel);

  /// The native handle's address.
  int get address => _drop.address;

  /// Opens an upload on a worker; the pool owns the handle from here.
  static Future<_Upload> open(PorterPool pool, _HttpArgs args,
      Duration? timeout, PorterCancelToken? cancel) async {
    final job = pool._enqueue(_Op.uploadOpen, timeout, cancel, args: args);
    // An upload opened after its call was cancelled is still the pool's
    // to free.
    unawaited(job.settled.future.then((_) {
      final opened = job.lateResult;
      if (opened is int) _freeNative(pool._b, _Op.uploadOpen, opened);
    }));
    final address = await job.completer.future as int;
    return _Upload._(pool, pool._own(_Op.uploadOpen, address), job.callId,
        '${args.url}', timeout, cancel);
  }

  /// Frees the handle without waiting (aborting an unfinished transfer);
  /// only once no worker uses it. Calling it again does nothing.
  void free() => _pool._freeHandle(_drop);

  /// Writes [body] to the end, one write in flight at a time: what
  /// arrives meanwhile is gathered (up to [_uploadPiece], then the
  /// subscription is paused) and goes out with the next write. Completes
  /// when the body has been written or the server wants no more of it;
  /// fails (having cancelled the subscription and freed the upload) with
  /// the body's error, a failed write, or a cancel.
  Future<void> send(Stream<List<int>> body) {
    final done = Completer<void>();
    final pending = BytesBuilder(copy: false);
    StreamSubscription<List<int>>? sub;
    _Job? writing;
    var ended = false;
    void Function()? unlisten;

    void stop() {
      unlisten?.call();
      unlisten = null;
      final cur = sub;
      if (cur != null && !ended) unawaited(cur.cancel());
    }

    void fail(Object e, [StackTrace? st]) {
      if (done.isCompleted) return;
      stop();
      done.completeError(e, st);
      // A write in flight is stopped in porterd; the handle is freed once
      // no worker uses it.
      final w = writing;
      if (w != null && !w.settled.isCompleted) _pool._cancelNowait(callId);
      unawaited((w?.settled.future ?? Future<void>.value()).then((_) => free()));
    }

    void pump() {
      if (done.isCompleted || writing != null) return;
      if (pending.isEmpty) {
        if (ended) {
          stop();
          done.complete();
        }
        return;
      }
      final bytes = pending.takeBytes();
      final cur = sub;
      if (cur != null && cur.isPaused && !ended) cur.resume();
      final _Job job;
      try {
        job = _pool._enqueue(_Op.uploadWrite, _timeout, null,
            args: _UploadWrite(
                address, _url, TransferableTypedData.fromList([bytes])));
      } catch (e, st) {
        fail(e, st);
        return;
      }
      writing = job;
      unawaited(job.completer.future.then((more) {
        writing = null;
        if (more == false) {
          // The server answered before taking the whole body.
          stop();
          ended = true;
          if (!done.isCompleted) done.complete();
          return;
        }
        pump();
      }, onError: fail));
    }

    final c = _cancel;
    if (c != null && c.isCancelled) {
      fail(PorterPool._cancelled());
      return done.future;
    }
    unlisten = c?._listen(() => fail(PorterPool._cancelled()));
    final subscription = sub = body.listen((chunk) {
      pending.add(chunk);
      final cur = sub;
      if (pending.length >= _uploadPiece && cur != null && !cur.isPaused) {
        cur.pause();
      }
      pump();
    }, onError: fail, onDone: () {
      ended = true;
      pump();
    }, cancelOnError: true);
    // Events a synchronous stream delivered during listen() came before
    // there was a subscription to pause.
    if (pending.length >= _uploadPiece && !subscription.isPaused) {
      subscription.pause();
    }
    return done.future;
  }
}
