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

  const PorterStats({
    required this.daemonVersion,
    required this.uptime,
    required this.workers,
    this.openFds = 0,
    this.dbConnections = 0,
    this.httpTransfers = 0,
  });

  /// Client connections open now, over all workers.
  int get connections => workers.fold(0, (n, w) => n + w.connections);

  /// Requests received since start, over all workers.
  int get requests => workers.fold(0, (n, w) => n + w.requests);

  @override
  String toString() => 'porterd $daemonVersion, up ${uptime.inSeconds} s, '
      '${workers.length} workers, $connections connections, '
      '$requests requests, $openFds fds, $dbConnections db connections, '
      '$httpTransfers HTTP transfers';
}
