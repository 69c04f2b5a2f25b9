// Batches: several operations the daemon runs concurrently in one call.
import 'dart:typed_data';

import 'codec.dart';
import 'db.dart';
import 'db_diag.dart' show PorterDbException;
import 'errors.dart';
import 'http.dart';

/// How a batch completes.
enum BatchMode {
  /// Wait for every member; every result comes back, in member order.
  all,

  /// Return as soon as one member succeeds and stop the others; when none
  /// succeeds, every member's failure comes back.
  first,
}

/// One member of a batch: a [BatchPing], [BatchQuery], [BatchFileRead] or
/// [BatchHttp]. Plain Dart values, so a batch can be sent to another
/// isolate.
sealed class BatchMember {
  const BatchMember();

  /// The member's own timeout; null for the batch's.
  Duration? get timeout;
}

/// One Ping member of a batch (see `Porter.ping`).
final class BatchPing extends BatchMember {
  /// The bytes to echo; null for none.
  final Uint8List? payload;

  /// How long the daemon waits before echoing.
  final Duration delay;

  /// The member's own timeout; null for the default.
  @override
  final Duration? timeout;

  const BatchPing({this.payload, this.delay = Duration.zero, this.timeout});
}

/// One query member (see `Porter.query`): on [session], or without one on
/// a pooled connection for [conninfo].
final class BatchQuery extends BatchMember {
  final String sql;
  final DbSession? session;
  final String? conninfo;
  final List<Object?> params;
  @override
  final Duration? timeout;

  const BatchQuery(this.sql,
      {this.session, this.conninfo, this.params = const [], this.timeout});
}

/// One file read member (see `Porter.readFile`). A batch member reads at
/// most one chunk (porterd's file-chunk-size, 1 MiB by default): compare
/// [BatchMemberResult.data]'s length with [BatchMemberResult.fileSize].
final class BatchFileRead extends BatchMember {
  final String path;
  final String? root;
  final int offset;
  final int? length;
  @override
  final Duration? timeout;

  const BatchFileRead(this.path,
      {this.root, this.offset = 0, this.length, this.timeout});
}

/// One HTTP request member (see `Porter.http`). In a [BatchMode.first]
/// batch the first member to get a response wins and the other transfers
/// are aborted: hedged requests to several mirrors in one call.
final class BatchHttp extends BatchMember {
  final Uri url;
  final String method;

  /// The request headers in order (a name may repeat).
  final List<HttpHeader> headers;
  final Uint8List? body;
  final HttpOptions? options;
  @override
  final Duration? timeout;

  const BatchHttp(this.url,
      {this.method = 'GET',
      this.headers = const [],
      this.body,
      this.options,
      this.timeout});
}

/// What to run as a batch: a plain Dart description, so it can be built on
/// one isolate and run on another (the pool's workers). The native builder
/// exists only for the duration of the run.
final class PorterBatch {
  /// How the batch completes.
  final BatchMode mode;

  final List<BatchMember> _members = [];

  PorterBatch([this.mode = BatchMode.all]);

  /// The members, in order.
  List<BatchMember> get members => List.unmodifiable(_members);

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

  /// Adds a query member; returns its index. Its result is
  /// [BatchMemberResult.db] (and an SQL error its [BatchMemberResult.error],
  /// a [PorterDbException] with the SQLSTATE).
  int addQuery(String sql,
      {DbSession? session,
      String? conninfo,
      List<Object?> params = const [],
      Duration? timeout}) {
    if (session == null && (conninfo == null || conninfo.isEmpty)) {
      throw ArgumentError('a query needs a session or a conninfo');
    }
    _checkTimeout(timeout);
    encodeParams(params); // ArgumentError now, not when the batch runs
    _members.add(BatchQuery(sql,
        session: session,
        conninfo: conninfo,
        params: List.unmodifiable(params),
        timeout: timeout));
    return _members.length - 1;
  }

  /// Adds a file read member (at most one chunk); returns its index. Its
  /// bytes are [BatchMemberResult.data].
  int addFileRead(String path,
      {String? root, int offset = 0, int? length, Duration? timeout}) {
    if (offset < 0 || (length != null && length < 0)) {
      throw ArgumentError('offset and length must not be negative');
    }
    _checkTimeout(timeout);
    _members.add(BatchFileRead(path,
        root: root, offset: offset, length: length, timeout: timeout));
    return _members.length - 1;
  }

  /// Adds an HTTP request member; returns its index. Its response is
  /// [BatchMemberResult.http]. [body] is null, a String (sent as UTF-8)
  /// or bytes.
  int addHttp(Uri url,
      {String method = 'GET',
      Map<String, Object> headers = const {},
      Object? body,
      HttpOptions? options,
      Duration? timeout}) {
    final lines = requestHeaders(headers);
    _checkTimeout(timeout);
    _members.add(BatchHttp(url,
        method: method,
        headers: List.unmodifiable(lines),
        body: httpBodyBytes(body),
        options: options,
        timeout: timeout));
    return _members.length - 1;
  }

  static void _checkTimeout(Duration? timeout) {
    if (timeout != null && timeout.isNegative) {
      throw ArgumentError.value(timeout, 'timeout', 'must not be negative');
    }
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

  /// A query member's result (when it succeeded).
  final DbResult? db;

  /// A successful file read member's bytes.
  final Uint8List? data;

  /// A successful file read member's file size (tells whether [data]
  /// reached the end of the file).
  final int? fileSize;

  /// A successful HTTP member's response (any HTTP status).
  final PorterHttpResponse? http;

  /// The failure with everything known about it (a [PorterDbException]
  /// with the SQLSTATE of a failed query member); null when there is no
  /// more than [code] and [message].
  final PorterException? exception;

  const BatchMemberResult(this.code, this.name, this.message, this.payload,
      {this.db, this.data, this.fileSize, this.http, this.exception});

  /// Whether the member succeeded.
  bool get ok => code == 0;

  /// The member's failure as an exception; null when it succeeded. A member
  /// stopped because another won a [BatchMode.first] batch is a
  /// [PorterCancelledException]; a failed HTTP member a
  /// [PorterHttpException], a failed query a [PorterDbException].
  PorterException? get error => ok
      ? null
      : (exception ?? PorterException.fromCode(code, name, message));
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
