// The daemon's counters, copied out of a native snapshot.

/// Counters of one daemon worker loop.
final class PorterWorkerStats {
  /// The worker's index, 0..n-1.
  final int worker;

  /// Client connections open now.
  final int connections;

  /// Requests received since the daemon started.
  final int requests;

  /// Requests being processed now.
  final int inflight;

  /// Failed responses since the daemon started.
  final int errors;

  /// Bytes read from clients since the daemon started.
  final int bytesIn;

  /// Bytes written to clients since the daemon started.
  final int bytesOut;

  const PorterWorkerStats({
    required this.worker,
    required this.connections,
    required this.requests,
    required this.inflight,
    required this.errors,
    required this.bytesIn,
    required this.bytesOut,
  });

  @override
  String toString() => 'worker $worker: $connections connections, '
      '$requests requests ($inflight in flight, $errors failed), '
      '$bytesIn bytes in, $bytesOut bytes out';
}

/// What one uid holds in porterd, against its quotas (porterd's
/// `uid-max-*` settings; a limit of 0 means none). A caller sees its own
/// uid only; porterd's own uid sees every uid holding something.
final class PorterUidUsage {
  final int uid;

  /// Connections open now, and the most it may hold.
  final int connections;
  final int maxConnections;

  /// Requests in flight over all its connections, and the most.
  final int inflight;
  final int maxInflight;

  /// Bytes buffered for it (unsent replies, read buffers), and the most.
  final int bufferedBytes;
  final int maxBuffered;

  /// Database connections (sessions and pooled) and the most it may hold
  /// (porterd's db-max-connections-per-uid), and streams (cursors, HTTP
  /// and file streams).
  final int sessions;
  final int maxSessions;
  final int streams;

  /// HTTP streams (also counted in [streams]), and the most it may hold
  /// (porterd's http-max-streams-per-uid).
  final int httpStreams;
  final int maxHttpStreams;

  /// File readers, writers and watches (also counted in [streams]), and
  /// the most it may hold (porterd's file-max-streams-per-uid).
  final int fileStreams;
  final int maxFileStreams;

  const PorterUidUsage(
      {required this.uid,
      this.connections = 0,
      this.maxConnections = 0,
      this.inflight = 0,
      this.maxInflight = 0,
      this.bufferedBytes = 0,
      this.maxBuffered = 0,
      this.sessions = 0,
      this.streams = 0,
      this.fileStreams = 0,
      this.maxFileStreams = 0,
      this.maxSessions = 0,
      this.httpStreams = 0,
      this.maxHttpStreams = 0});

  @override
  String toString() => 'uid $uid: $connections/$maxConnections connections, '
      '$inflight/$maxInflight in flight, $bufferedBytes/$maxBuffered bytes '
      'buffered, $sessions/$maxSessions database connections, $streams streams '
      '($fileStreams/$maxFileStreams file streams, '
      '$httpStreams/$maxHttpStreams HTTP streams)';
}

/// A snapshot of the daemon's counters. A plain Dart object: it owns no
/// native memory and can be sent between isolates.
final class PorterStats {
  /// The daemon's version, e.g. `0.1.0`.
  final String daemonVersion;

  /// How long the daemon had been running when the snapshot was taken.
  final Duration uptime;

  /// One entry per worker loop.
  final List<PorterWorkerStats> workers;

  /// Descriptors open in the daemon process (so leaks show).
  final int openFds;

  /// PostgreSQL connections open in the daemon (sessions and pooled, over
  /// all workers).
  final int dbConnections;

  /// HTTP transfers alive in the daemon (requests and streams).
  final int httpTransfers;

  /// File reads and stats porterd answered on its worker loops, without
  /// its thread pool (its fast path: path and data already cached), summed
  /// over the workers since it started; 0 from a porterd without the fast
  /// path.
  final int fileFast;

  /// What each uid holds against its quotas: the caller's own uid, or
  /// every uid holding something when the caller is porterd's own uid.
  final List<PorterUidUsage> uids;

  const PorterStats({
    required this.daemonVersion,
    required this.uptime,
    required this.workers,
    this.openFds = 0,
    this.dbConnections = 0,
    this.httpTransfers = 0,
    this.fileFast = 0,
    this.uids = const [],
  });

  /// Client connections open now, over all workers.
  int get connections => workers.fold(0, (n, w) => n + w.connections);

  /// Requests received since start, over all workers.
  int get requests => workers.fold(0, (n, w) => n + w.requests);

  @override
  String toString() => 'porterd $daemonVersion, up ${uptime.inSeconds} s, '
      '${workers.length} workers, $connections connections, '
      '$requests requests, $openFds fds, $dbConnections db connections, '
      '$httpTransfers HTTP transfers, $fileFast fast file calls';
}
