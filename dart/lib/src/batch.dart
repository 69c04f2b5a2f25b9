// Batches: several operations the daemon runs concurrently in one call.
import 'dart:typed_data';

import 'errors.dart';

/// How a batch completes.
enum BatchMode {
  /// Wait for every member; every result comes back, in member order.
  all,

  /// Return as soon as one member succeeds and stop the others; when none
  /// succeeds, every member's failure comes back.
  first,
}

/// One Ping member of a batch (see `Porter.ping`).
final class BatchPing {
  /// The bytes to echo; null for none.
  final Uint8List? payload;

  /// How long the daemon waits before echoing.
  final Duration delay;

  /// The member's own timeout; null for the default.
  final Duration? timeout;

  const BatchPing({this.payload, this.delay = Duration.zero, this.timeout});
}

/// What to run as a batch: a plain Dart description, so it can be built on
/// one isolate and run on another (the pool's workers). The native builder
/// exists only for the duration of the run.
final class PorterBatch {
  /// How the batch completes.
  final BatchMode mode;

  final List<BatchPing> _members = [];

  PorterBatch([this.mode = BatchMode.all]);

  /// The members, in order.
  List<BatchPing> get members => List.unmodifiable(_members);

  /// The number of members.
  int get length => _members.length;

  /// Adds a Ping member; returns its index.
  int addPing({Uint8List? payload, Duration delay = Duration.zero, Duration? timeout}) {
    if (delay.isNegative) {
      throw ArgumentError.value(delay, 'delay', 'must not be negative');
    }
    if (timeout != null && timeout.isNegative) {
      throw ArgumentError.value(timeout, 'timeout', 'must not be negative');
    }
    _members.add(BatchPing(payload: payload, delay: delay, timeout: timeout));
    return _members.length - 1;
  }
}

/// The outcome of one batch member.
final class BatchMemberResult {
  /// 0, or the member's negative error code.
  final int code;

  /// The code's symbolic name (`PORTER_OK` on success).
  final String name;

  /// The member's error message ("" on success).
  final String message;

  /// A successful Ping member's echo.
  final Uint8List? payload;

  const BatchMemberResult(this.code, this.name, this.message, this.payload);

  /// Whether the member succeeded.
  bool get ok => code == 0;

  /// The member's failure as an exception; null when it succeeded. A member
  /// stopped because another won a [BatchMode.first] batch is a
  /// [PorterCancelledException].
  PorterException? get error =>
      ok ? null : PorterException.fromCode(code, name, message);
}

/// The results of a batch run. A plain Dart object: it owns no native
/// memory and can be sent between isolates.
final class PorterBatchResult {
  /// One result per member, in member order.
  final List<BatchMemberResult> members;

  /// [BatchMode.first]: the index of the member that succeeded; null when
  /// none did (and always for [BatchMode.all]).
  final int? winner;

  const PorterBatchResult(this.members, this.winner);
}
