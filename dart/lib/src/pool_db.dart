// The pool's PostgreSQL calls: sessions, queries, transactions and
// streamed results.
part of 'pool.dart';

/// The PostgreSQL part of [PorterPool] (one concern per file; the class
/// is one).
mixin _PoolDb on _PoolCore {
  /// Sessions opened through this pool and not closed yet: [PorterPool.close] closes
  /// them (their transactions roll back).
  final Set<DbSession> _sessions = {};

  /// Opens a database session on a worker; see [Porter.dbOpen]. The
  /// [DbSession] may be used by any worker and any isolate afterwards; the
  /// pool closes it at [PorterPool.close] if nobody did before.
  Future<DbSession> dbOpen(String conninfo,
      {Duration? timeout, PorterCancelToken? cancel}) async {
    final job = _enqueue(_Op.dbOpen, timeout, cancel, args: conninfo);
    // A session opened after the call was cancelled is still this pool's
    // to close.
    unawaited(job.settled.future.then((_) {
      final opened = job.lateResult;
      if (opened is DbSession) unawaited(_closeSession(opened));
    }));
    final s = await job.completer.future as DbSession;
    _sessions.add(s);
    return s;
  }

  /// Closes [session]; see [Porter.dbClose].
  Future<void> dbClose(DbSession session, {Duration? timeout}) {
    _sessions.remove(session);
    return _submit(_Op.dbClose, timeout, null, args: session.id).then((_) {});
  }

  /// Closes a session of the pool's own (a transaction's, one opened
  /// after its call was cancelled), also while the pool is closing.
  Future<void> _closeSession(DbSession s) async {
    _sessions.remove(s);
    try {
      await PorterPool._result(_enqueueInternal(_Op.dbClose, null, s.id));
    } on Object {
      // Best effort: porterd closes a client's sessions once its
      // connections are gone (db-session-grace).
    }
  }

  /// Runs a query on a worker; see [Porter.query] and [DbParam] for the
  /// parameters (checked here: a bad one fails the future with an
  /// [ArgumentError] without reaching a worker). Successive queries on one
  /// [session] may run on different workers (threads): the session lives
  /// in porterd, so its transaction carries over.
  Future<DbResult> query(String sql,
      {DbSession? session,
      String? conninfo,
      List<Object?> params = const [],
      Duration? timeout,
      PorterCancelToken? cancel}) {
    try {
      return _submit(_Op.query, timeout, cancel,
              args: _queryArgs(sql, session, conninfo, params, 0))
          .then((v) => v as DbResult);
    } catch (e, st) {
      return Future.error(e, st);
    }
  }

  _QueryArgs _queryArgs(String sql, DbSession? session, String? conninfo,
      List<Object?> params, int chunkRows,
      [Duration? streamTimeout]) {
    if (session == null && (conninfo == null || conninfo.isEmpty)) {
      throw ArgumentError('a query needs a session or a conninfo');
    }
    return _QueryArgs(sql, session?.id ?? 0, conninfo,
        List.unmodifiable(encodeParams(params)), chunkRows, streamTimeout);
  }

  /// Runs [body] in a transaction and returns its result: `BEGIN` (or
  /// [begin], e.g. `BEGIN ISOLATION LEVEL SERIALIZABLE`), then `COMMIT`
  /// when [body] completes, or `ROLLBACK` when it throws, when [cancel]
  /// fires (its calls then fail with [PorterCancelledException], which
  /// this rethrows) or when the commit itself fails.
  ///
  /// The transaction runs on [session] when given, else on a session
  /// opened on [conninfo] for it and closed afterwards. Make every call of
  /// the transaction through `tx`: a call through the pool on another
  /// session, or a pooled one, is outside it. [timeout] bounds each
  /// statement (default: the pool's [PorterTimeouts.query]).
  ///
  /// ```dart
  /// final id = await pool.transaction((tx) async {
  ///   final r = await tx.query(
  ///       r'INSERT INTO notes (body) VALUES ($1) RETURNING id', params: ['hi']);
  ///   await tx.query(r'UPDATE counts SET n = n + 1 WHERE owner = $1',
  ///       params: ['me']);
  ///   return r.rows.single.getInt('id');
  /// }, conninfo: conninfo);
  /// ```
  Future<T> transaction<T>(Future<T> Function(PorterTransaction tx) body,
      {DbSession? session,
      String? conninfo,
      String begin = 'BEGIN',
      Duration? timeout,
      PorterCancelToken? cancel}) async {
    if (session == null && (conninfo == null || conninfo.isEmpty)) {
      throw ArgumentError('a transaction needs a session or a conninfo');
    }
    final own = session == null;
    final s = session ?? await dbOpen(conninfo!, timeout: timeout, cancel: cancel);
    try {
      await query(begin, session: s, timeout: timeout, cancel: cancel);
      final T result;
      try {
        result = await body(PorterTransaction._(_pool, s, timeout, cancel));
        if (cancel != null && cancel.isCancelled) throw PorterPool._cancelled();
        await query('COMMIT', session: s, timeout: timeout);
      } catch (_) {
        // No token here: the rollback must run even when the token fired.
        // A failure of it leaves the session unusable, and closing it
        // (below, or porterd's cleanup) rolls back too.
        try {
          await query('ROLLBACK', session: s, timeout: timeout);
        } on Object {
          // The original failure is what the caller needs to see.
        }
        rethrow;
      }
      return result;
    } finally {
      if (own) await _closeSession(s);
    }
  }

  /// A streamed query as a [Stream] of row chunks (up to [chunkRows] rows
  /// each): the query starts when the stream is listened to, and each
  /// chunk is pulled from porterd by whichever worker is free, only once
  /// the previous one was delivered and while the subscription is not
  /// paused, so a slow listener slows the query down instead of filling
  /// memory, and holds no worker. Each pull is bounded by [timeout], and
  /// the whole stream by [streamTimeout] (counted from the open; null:
  /// none).
  /// Cancelling the subscription (`break` in `await for`), or [cancel],
  /// closes the cursor and porterd cancels the query; [cancel] also ends
  /// the stream with a [PorterCancelledException]. An SQL error ends it
  /// with a [PorterDbException]. While a stream on a [session] is open,
  /// other calls on that session wait until it ends (calls on one session
  /// run one at a time): read it to the end or cancel it first.
  ///
  /// [onNotice] is called on this isolate with each notice the server
  /// sends (RAISE NOTICE, warnings), before the chunk it came with; an
  /// exception it throws ends the stream. Without it notices are dropped.
  Stream<List<Row>> queryStream(String sql,
      {DbSession? session,
      String? conninfo,
      List<Object?> params = const [],
      int chunkRows = 1000,
      Duration? timeout,
      Duration? streamTimeout,
      PorterCancelToken? cancel,
      void Function(DbNotice notice)? onNotice}) {
    final _QueryArgs args;
    try {
      checkChunkRows(chunkRows);
      streamMs(streamTimeout); // checked here, used by the worker
      args = _queryArgs(sql, session, conninfo, params, chunkRows,
          streamTimeout);
    } catch (e, st) {
      return Stream.error(e, st);
    }
    final h = _HandleStream<List<Row>>(_pool, _Op.cursorOpen, args,
        _Op.cursorRead, '', timeout, cancel,
        addressOf: (v) => v as int, chunkOf: (v) {
      if (v is! _RowsWithNotices) return v as List<Row>?;
      if (onNotice != null) v.notices.forEach(onNotice);
      return v.rows;
    });
    return h.stream(openOnListen: true);
  }

}

/// The calls of one transaction ([PorterPool.transaction]): each runs on
/// the transaction's session, with its timeout and cancel token.
final class PorterTransaction {
  final PorterPool _pool;

  /// The session the transaction runs on.
  final DbSession session;
  final Duration? _timeout;
  final PorterCancelToken? _cancel;

  PorterTransaction._(this._pool, this.session, this._timeout, this._cancel);

  /// [PorterPool.query] in the transaction.
  Future<DbResult> query(String sql,
          {List<Object?> params = const [], Duration? timeout}) =>
      _pool.query(sql,
          session: session,
          params: params,
          timeout: timeout ?? _timeout,
          cancel: _cancel);

  /// [PorterPool.queryStream] in the transaction.
  Stream<List<Row>> queryStream(String sql,
          {List<Object?> params = const [],
          int chunkRows = 1000,
          Duration? timeout,
          void Function(DbNotice notice)? onNotice}) =>
      _pool.queryStream(sql,
          session: session,
          params: params,
          chunkRows: chunkRows,
          timeout: timeout ?? _timeout,
          cancel: _cancel,
          onNotice: onNotice);
}

