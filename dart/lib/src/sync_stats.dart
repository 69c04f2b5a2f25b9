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
    final n = _b.porter_stats_workers(_ptr);
    final w = calloc<porter_worker_stats>();
    try {
      final workers = <PorterWorkerStats>[];
      for (var i = 0; i < n; i++) {
        if (_b.porter_stats_worker(_ptr, i, w) < 0) {
          throw StateError('worker $i of $n missing from the snapshot');
        }
        final r = w.ref;
        workers.add(PorterWorkerStats(
          worker: r.worker,
          connections: r.connections,
          requests: r.requests,
          inflight: r.inflight,
          errors: r.errors,
          bytesIn: r.bytes_in,
          bytesOut: r.bytes_out,
        ));
      }
      return PorterStats(
        uids: _uids(),
        daemonVersion:
            _b.porter_stats_daemon_version(_ptr).cast<Utf8>().toDartString(),
        uptime: Duration(milliseconds: _b.porter_stats_uptime_ms(_ptr)),
        workers: List.unmodifiable(workers),
        openFds: _b.porter_stats_open_fds(_ptr),
        dbConnections: _b.porter_stats_db_connections(_ptr),
        httpTransfers: _b.porter_stats_http_transfers(_ptr),
      );
    } finally {
      calloc.free(w);
    }
  }

  List<PorterUidUsage> _uids() {
    final n = _b.porter_stats_uids(_ptr);
    final u = calloc<porter_uid_usage>();
    try {
      final out = <PorterUidUsage>[];
      for (var i = 0; i < n; i++) {
        if (_b.porter_stats_uid(_ptr, i, u) < 0) {
          throw StateError('uid $i of $n missing from the snapshot');
        }
        final r = u.ref;
        out.add(PorterUidUsage(
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
            maxFileStreams: r.max_file_streams));
      }
      return List.unmodifiable(out);
    } finally {
      calloc.free(u);
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
