// Native objects the synchronous API owns between a call and its copy
// into Dart: stats snapshots, batch builders and results.
part of 'sync.dart';

/// One finalizer per free function, per isolate.
final Map<int, NativeFinalizer> _finalizers = {};

NativeFinalizer _finalizerFor(Pointer<NativeFinalizerFunction> free) =>
    _finalizers[free.address] ??= NativeFinalizer(free);

/// A native object owned by Dart: freed by [free], or by its finalizer if
/// it becomes unreachable first (a safety net, not the normal path).
final class _Owned implements Finalizable {
  final NativeFinalizer _finalizer;
  final void Function(Pointer<Void>) _free;
  Pointer<Void> _ptr;

  _Owned(this._ptr, this._finalizer, this._free) {
    _finalizer.attach(this, _ptr, detach: this);
  }

  void free() {
    if (_ptr == nullptr) return;
    _finalizer.detach(this);
    _free(_ptr);
    _ptr = nullptr;
  }
}

/// A native stats snapshot owned by Dart: freed by [free], or by the
/// finalizer if it becomes unreachable first (an exception between the
/// native call and [free] must not leak it).
final class StatsSnapshot implements Finalizable {
  static NativeFinalizer? _finalizer;

  final PorterBindings _b;
  Pointer<porter_stats_snapshot> _ptr;

  StatsSnapshot._(this._b, this._ptr) {
    final f = _finalizer ??=
        NativeFinalizer(_b.addresses.porter_stats_free.cast());
    f.attach(this, _ptr.cast(), detach: this);
  }

  /// Copies the counters into a plain Dart [PorterStats].
  PorterStats read() {
    if (_ptr == nullptr) throw StateError('snapshot already freed');
    return PorterStats(
      uids: _entries<porter_uid_usage, PorterUidUsage>(
          'uid',
          _b.porter_stats_uids(_ptr),
          calloc<porter_uid_usage>()
            ..ref.struct_size = sizeOf<porter_uid_usage>(),
          (i, u) => _b.porter_stats_uid(_ptr, i, u), (u) {
        final r = u.ref;
        return PorterUidUsage(
            uid: r.uid,
            connections: r.connections,
            maxConnections: r.max_connections,
            inflight: r.inflight,
            maxInflight: r.max_inflight,
            bufferedBytes: r.buffered_bytes,
            maxBuffered: r.max_buffered,
            sessions: r.sessions,
            streams: r.streams,
            fileStreams: r.file_streams,
            maxFileStreams: r.max_file_streams,
            maxSessions: r.max_sessions,
            httpStreams: r.http_streams,
            maxHttpStreams: r.max_http_streams);
      }),
      daemonVersion: cString(_b.porter_stats_daemon_version(_ptr)),
      uptime: Duration(milliseconds: _b.porter_stats_uptime_ms(_ptr)),
      workers: _entries<porter_worker_stats, PorterWorkerStats>(
          'worker',
          _b.porter_stats_workers(_ptr),
          calloc<porter_worker_stats>()
            ..ref.struct_size = sizeOf<porter_worker_stats>(),
          (i, w) => _b.porter_stats_worker(_ptr, i, w), (w) {
        final r = w.ref;
        return PorterWorkerStats(
          worker: r.worker,
          connections: r.connections,
          requests: r.requests,
          inflight: r.inflight,
          errors: r.errors,
          bytesIn: r.bytes_in,
          bytesOut: r.bytes_out,
        );
      }),
      openFds: _b.porter_stats_open_fds(_ptr),
      dbConnections: _b.porter_stats_db_connections(_ptr),
      httpTransfers: _b.porter_stats_http_transfers(_ptr),
      fileFast: _b.porter_stats_file_fast(_ptr),
    );
  }

  /// The [n] entries of one table of the snapshot (workers, uids): each
  /// copied by [copy] into [slot] (a native struct with its struct_size
  /// set, which this frees) and converted by [convert]. [what] names an
  /// entry in the error thrown when one is missing. The struct type is a
  /// parameter because `calloc<T>()` and `.ref` need it known where they
  /// are written.
  static List<T> _entries<S extends Struct, T>(
      String what,
      int n,
      Pointer<S> slot,
      int Function(int i, Pointer<S> slot) copy,
      T Function(Pointer<S> slot) convert) {
    try {
      final out = <T>[];
      for (var i = 0; i < n; i++) {
        if (copy(i, slot) < 0) {
          throw StateError('$what $i of $n missing from the snapshot');
        }
        out.add(convert(slot));
      }
      return List.unmodifiable(out);
    } finally {
      calloc.free(slot);
    }
  }

  /// Frees the native snapshot now; calling it again does nothing.
  void free() {
    if (_ptr == nullptr) return;
    _finalizer!.detach(this);
    _b.porter_stats_free(_ptr);
    _ptr = nullptr;
  }
}
