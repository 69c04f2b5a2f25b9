// The synchronous API: blocking calls on the calling thread's connection.
import 'dart:convert';
import 'dart:ffi';
import 'dart:typed_data';

import 'package:ffi/ffi.dart';

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
import 'native.dart';
import 'stats.dart';

part 'sync_batch.dart';
part 'sync_db.dart';
part 'sync_files.dart';
part 'sync_http.dart';
part 'sync_stats.dart';

/// Blocking access to porterd from the calling isolate.
///
/// Every method sends one request on the connection of the OS thread the
/// isolate runs on, and blocks that thread until the reply arrives or the
/// timeout passes. Use it in background isolates (or `Isolate.run`), never
/// on Flutter's UI isolate: use [PorterPool] there.
///
/// A `Porter` holds no connection of its own, so creating several is cheap
/// and an isolate that migrates to another thread between two calls is
/// fine: each call is complete within the thread it started on, and its
/// error is read in the same synchronous sequence (no `await` between the
/// native call and the read of the thread's last error).
///
/// The calls are grouped by concern, one file each (the class is one):
/// PostgreSQL (sync_db.dart), HTTP (sync_http.dart), files
/// (sync_files.dart); pings, ids, cancels, stats and batches are here.
final class Porter with _DbCalls, _HttpCalls, _FileCalls {
  @override
  final PorterBindings _b;

  /// The library path this instance was opened with (see
  /// [openPorterLibrary]); passed on to worker isolates by [PorterPool].
  final String? libraryPath;

  /// Opens libporter (see [openPorterLibrary] for [libraryPath]).
  Porter({this.libraryPath}) : _b = porterBindings(path: libraryPath);

  /// Uses already opened bindings (for tests and custom loading).
  Porter.fromBindings(PorterBindings bindings)
      : _b = bindings,
        libraryPath = null;

  /// The raw bindings, for calls this class does not wrap yet.
  PorterBindings get bindings => _b;

  /// libporter's version, e.g. `0.1.0`.
  String get version => _b.porter_version().cast<Utf8>().toDartString();

  /// The socket path calls go to (`PORTER_SOCKET`, else the daemon's
  /// default).
  String get socketPath {
    const cap = 4096;
    final buf = calloc<Char>(cap);
    try {
      final n = _b.porter_socket_path(buf, cap);
      if (n < 0) _throw(n);
      // A path is bytes: one that is not UTF-8 reads with U+FFFD in it
      // rather than throwing.
      return utf8.decode(buf.cast<Uint8>().asTypedList(n), allowMalformed: true);
    } finally {
      calloc.free(buf);
    }
  }

  /// The symbolic name of an error [code], e.g. `PORTER_E_TIMEOUT`.
  String errorName(int code) =>
      _b.porter_error_name(code).cast<Utf8>().toDartString();

  /// The static English description of an error [code].
  String errorMessage(int code) =>
      _b.porter_strerror(code).cast<Utf8>().toDartString();

  /// Sends a ping carrying [payload] and waits for its echo.
  ///
  /// With [delay] the daemon waits that long before echoing: a diagnostic
  /// for deadlines and cancellation that needs no other server.
  /// Blocks for at most [timeout] (null: the library default, 5 s).
  /// Throws [PorterUnreachableException] when no daemon listens,
  /// [PorterTimeoutException] when the echo is late and
  /// [PorterCancelledException] when [cancel] stopped it.
  void ping(
      {Uint8List? payload, Duration? delay, Duration? timeout, int callId = 0}) {
    final ms = timeoutMs(timeout);
    final delayMs = delay == null ? 0 : _delayMs(delay);
    final len = payload?.length ?? 0;
    final buf = len == 0 ? nullptr : calloc<Uint8>(len);
    try {
      if (len != 0) buf.asTypedList(len).setAll(0, payload!);
      final rc = delay == null
          ? _b.porter_ping(buf.cast(), len, callId, ms)
          : _b.porter_ping_delay(buf.cast(), len, delayMs, callId, ms);
      if (rc < 0) _throw(rc);
    } finally {
      if (len != 0) calloc.free(buf);
    }
  }

  /// A new call id, to pass as `callId:` to a call so that any isolate
  /// can [cancel] it: unique in the process, never 0, no thread state (take
  /// it anywhere, use it on any thread). Never blocks. A stream's reads
  /// use its open's id unless given their own, so cancelling the open's id
  /// stops whichever read is in flight.
  int newCallId() => _b.porter_call_id_new();

  /// Asks the daemon to stop call [id] of this process, made on any thread.
  /// Returns true when it was in flight and has been stopped (its caller
  /// gets [PorterCancelledException]), false when no such call is running
  /// (finished already, or not arrived yet: then the daemon refuses it when
  /// it arrives). Blocks for at most [timeout].
  bool cancel(int id, {Duration? timeout}) {
    final rc = _b.porter_cancel(id, timeoutMs(timeout));
    if (rc == porter_error.PORTER_E_NOT_FOUND) return false;
    if (rc < 0) _throw(rc);
    return true;
  }

  /// Asks the daemon to stop call [id] without waiting: libporter's
  /// background thread sends the cancel. Safe on a UI isolate.
  void cancelNowait(int id) {
    final rc = _b.porter_cancel_nowait(id);
    if (rc < 0) _throw(rc);
  }

  /// The daemon's counters. Blocks for at most [timeout].
  PorterStats stats({Duration? timeout, int callId = 0}) {
    final ms = timeoutMs(timeout);
    final out = calloc<Pointer<porter_stats_snapshot>>();
    StatsSnapshot? snap;
    try {
      final rc = _b.porter_stats(callId, ms, out);
      if (rc < 0) _throw(rc);
      snap = StatsSnapshot._(_b, out.value);
      return snap.read();
    } finally {
      snap?.free();
      calloc.free(out);
    }
  }

  /// Runs [batch] in one call: the daemon runs its members concurrently.
  /// Blocks for at most [timeout] for the whole batch; each member also has
  /// its own. Throws only when the batch as a whole failed; read each
  /// member's outcome in the result.
  PorterBatchResult batch(PorterBatch batch,
      {Duration? timeout, int callId = 0}) {
    final ms = timeoutMs(timeout);
    final b = _b.porter_batch_new(
        batch.mode == BatchMode.all ? PORTER_BATCH_ALL : PORTER_BATCH_FIRST);
    if (b == nullptr) {
      throw PorterException.fromCode(porter_error.PORTER_E_NOMEM,
          'PORTER_E_NOMEM', 'cannot allocate a batch');
    }
    final builder = _Owned(b.cast(), _finalizerFor(_b.addresses.porter_batch_free.cast()),
        (p) => _b.porter_batch_free(p.cast()));
    final out = calloc<Pointer<porter_batch_result>>();
    _Owned? result;
    try {
      final members = batch.members;
      for (final m in members) {
        final rc = _addMember(b, m);
        if (rc < 0) _throw(rc);
      }
      final rc = _b.porter_batch_run(b, callId, ms, out);
      if (rc < 0) _throw(rc);
      final r = out.value;
      result = _Owned(r.cast(),
          _finalizerFor(_b.addresses.porter_batch_result_free.cast()),
          (p) => _b.porter_batch_result_free(p.cast()));
      return _readBatch(r, members);
    } finally {
      result?.free();
      builder.free();
      calloc.free(out);
    }
  }

  /// Closes the connection of the OS thread this isolate runs on now, and
  /// only that one: an isolate that ran on several threads over its life
  /// (after any `await` it may resume on another) left a connection on
  /// each, closed when that thread exits or calls this. Call it at the end
  /// of synchronous work on a thread the VM keeps (a background isolate
  /// about to finish, a pool worker stopping); connections are cheap, and
  /// porterd releases nothing a client still names by id (sessions stay
  /// open until [dbClose]).
  void disconnectThread() => _b.porter_thread_disconnect();

  /// PROCESS-WIDE: starts a new client instance for the whole process, for
  /// a hot restart only. Every thread's next call, in every isolate,
  /// opens a new connection, and porterd releases what the old instance
  /// held as the old connections close: the sessions, cursors and streams
  /// of every isolate of the process, not just this one's. [PorterPool.spawn]
  /// calls it once per program run (its `reset:` argument).
  void reset() => _b.porter_reset();

  /// Throws the exception for [code], with the calling thread's last error
  /// message (read at once, before anything else can run on this thread).
  Never _throw(int code) {
    var message = cString(_b.porter_last_error_message());
    if (message.isEmpty) message = errorMessage(code);
    throw PorterException.fromCode(code, errorName(code), message);
  }
}

int _delayMs(Duration delay) {
  if (delay.isNegative) {
    throw ArgumentError.value(delay, 'delay', 'must not be negative');
  }
  final ms = delay.inMilliseconds;
  return ms > 0xffffffff ? 0xffffffff : ms;
}

/// A whole-stream deadline as libporter takes it: milliseconds, 0 for none.
int streamMs(Duration? d) {
  if (d == null) return 0;
  if (d.isNegative) {
    throw ArgumentError.value(d, 'streamTimeout', 'must not be negative');
  }
  final ms = d.inMilliseconds;
  if (ms == 0) return 1;
  return ms > 0xffffffff ? 0xffffffff : ms;
}

/// A timeout as libporter takes it: milliseconds, 0 for the default.
int timeoutMs(Duration? timeout) {
  if (timeout == null) return 0;
  if (timeout.isNegative) {
    throw ArgumentError.value(timeout, 'timeout', 'must not be negative');
  }
  final ms = timeout.inMilliseconds;
  // 0 would mean "the default"; a tiny timeout is still a timeout.
  if (ms == 0) return 1;
  return ms > 0x7fffffff ? 0x7fffffff : ms;
}
