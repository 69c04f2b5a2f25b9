// Porter's PostgreSQL calls: sessions, queries and streamed queries.
part of 'sync.dart';

/// The PostgreSQL part of [Porter] (one concern per file; the class is
/// one).
mixin _DbCalls {
  PorterBindings get _b;

  /// Opens a database session on [conninfo] (a libpq conninfo string or
  /// URI). The session lives in porterd and may be used from any isolate
  /// of this process (send the [DbSession] over). Blocks for at most
  /// [timeout]. Throws [PorterDbException] (code PORTER_E_DB_CONNECT with
  /// libpq's message when the server refuses), [PorterTimeoutException].
  DbSession dbOpen(String conninfo, {Duration? timeout, int callId = 0}) {
    final ms = timeoutMs(timeout);
    final ci = nativeText(conninfo, 'conninfo');
    final out = calloc<Uint64>();
    try {
      final rc = _b.porter_db_open(ci, callId, ms, out);
      if (rc < 0) throw _dbFailure(_b, rc, nullptr);
      return DbSession(out.value);
    } finally {
      calloc.free(ci);
      calloc.free(out);
    }
  }

  /// Closes [session], rolling back an open transaction. Throws
  /// [PorterDbException] (PORTER_E_DB_SESSION) when it is not open.
  void dbClose(DbSession session, {Duration? timeout, int callId = 0}) {
    final ms = timeoutMs(timeout);
    final rc = _b.porter_db_close(session.id, callId, ms);
    if (rc < 0) throw _dbFailure(_b, rc, nullptr);
  }

  /// Closes [session] without waiting (porter_db_free): libporter's
  /// background thread tells porterd, which rolls back an open
  /// transaction. Never blocks, even with porterd stopped, and never
  /// throws; a session closed already is ignored. For code that must not
  /// wait (a dispose on the UI isolate); [DbSession] itself has no
  /// finalizer, since it is a plain id that other isolates may hold.
  void dbFree(DbSession session) => _b.porter_db_free(session.id);

  /// Runs [sql] on [session], or without one on a pooled connection for
  /// [conninfo] (then it must not rely on session state). [params] are $1..
  /// $n: see [DbParam] for the values accepted (null is SQL NULL, a
  /// [Uint8List] is binary bytea). Without parameters [sql] may hold
  /// several statements: see [DbResult.parts].
  ///
  /// Blocks for at most [timeout] (null: 5 s); on expiry porterd cancels
  /// the query on the server and the session stays usable. Throws
  /// [PorterDbException] with the SQLSTATE, DETAIL and HINT of an SQL
  /// error, [PorterTimeoutException], [PorterCancelledException] (see
  /// [Porter.newCallId]), ...
  DbResult query(String sql,
      {DbSession? session,
      String? conninfo,
      List<Object?> params = const [],
      Duration? timeout,
      int callId = 0}) {
    final ms = timeoutMs(timeout);
    return _withQuery(sql, session, conninfo, params, (ci, s, np) {
      final out = calloc<Pointer<porter_db_result>>();
      try {
        final rc = _b.porter_db_query(session?.id ?? 0, ci, s, np.array,
            np.length, callId, ms, out);
        final r = out.value;
        try {
          if (rc < 0) throw _dbFailure(_b, rc, r);
          return readResult(_b, r);
        } finally {
          _b.porter_db_result_free(r);
        }
      } finally {
        calloc.free(out);
      }
    });
  }

  /// Starts a streamed query (arguments as for [query]; a single
  /// statement) whose rows come [chunkRows] (1..100000) at a time, so
  /// neither porterd nor this process holds more than one chunk. The first
  /// chunk arrives with this call. Read with [DbCursor.next] and always
  /// [DbCursor.close] it (in a `finally`). While it is open, other calls on
  /// [session] wait until it ends. For an async stream of chunks use
  /// [PorterPool.queryStream].
  DbCursor queryCursor(String sql,
      {DbSession? session,
      String? conninfo,
      List<Object?> params = const [],
      int chunkRows = 1000,
      Duration? timeout,
      Duration? streamTimeout,
      int callId = 0}) {
    checkChunkRows(chunkRows);
    final ms = timeoutMs(timeout);
    final stream = streamMs(streamTimeout);
    return _withQuery(sql, session, conninfo, params, (ci, s, np) {
      final out = calloc<Pointer<porter_db_cursor>>();
      try {
        final rc = _b.porter_db_cursor_open(session?.id ?? 0, ci, s, np.array,
            np.length, chunkRows, stream, callId, ms, out);
        if (rc < 0) throw _dbFailure(_b, rc, nullptr);
        return DbCursor.own(_b, out.value);
      } finally {
        calloc.free(out);
      }
    });
  }

  /// Runs a streamed query (arguments as for [queryCursor]) and hands
  /// each chunk of rows to [onChunk] on this thread, each pull blocking for
  /// at most [timeout]. Return false from [onChunk] to stop early. The
  /// cursor is closed before this returns, however it ends (the end, a
  /// false, an exception): unlike a `sync*` generator, whose `finally`
  /// never runs when the loop over it is left with `break`. Returns the
  /// number of chunks handed over.
  int queryEach(String sql, bool Function(List<Row> chunk) onChunk,
      {DbSession? session,
      String? conninfo,
      List<Object?> params = const [],
      int chunkRows = 1000,
      Duration? timeout,
      Duration? streamTimeout,
      int callId = 0}) {
    final ms = timeoutMs(timeout);
    final cur = queryCursor(sql,
        session: session,
        conninfo: conninfo,
        params: params,
        chunkRows: chunkRows,
        timeout: timeout,
        streamTimeout: streamTimeout,
        callId: callId);
    final (n, _) = drainChunks(
        () => cur.next(ms)?.rows, onChunk, cur.close);
    return n;
  }
}

/// Runs [body] with native copies of a query's conninfo (nullptr with a
/// [session]), [sql] and [params], freed afterwards. Checks the target
/// and encodes the parameters before anything is allocated: throws
/// [ArgumentError] for a query with neither a session nor a conninfo, or
/// for a parameter [encodeParams] does not take.
T _withQuery<T>(String sql, DbSession? session, String? conninfo,
    List<Object?> params,
    T Function(Pointer<Char> conninfo, Pointer<Char> sql, NativeParams np)
        body) {
  _checkTarget(session, conninfo);
  // Every argument is checked before anything is allocated.
  checkNativeText(sql, 'sql');
  if (session == null) checkNativeText(conninfo!, 'conninfo');
  final encoded = encodeParams(params);
  final np = NativeParams(encoded);
  final s = nativeText(sql, 'sql');
  final Pointer<Char> ci =
      session == null ? nativeText(conninfo!, 'conninfo') : nullptr;
  try {
    return body(ci, s, np);
  } finally {
    if (ci != nullptr) calloc.free(ci);
    calloc.free(s);
    np.free();
  }
}

void _checkTarget(DbSession? session, String? conninfo) {
  if (session == null && (conninfo == null || conninfo.isEmpty)) {
    throw ArgumentError('a query needs a session or a conninfo');
  }
}

/// The exception for a failed database call with [code]: the server's
/// fields from native result [r] (nullptr when there is none), else the
/// calling thread's last error message, read at once.
PorterException _dbFailure(
    PorterBindings b, int code, Pointer<porter_db_result> r) {
  final last = cString(b.porter_last_error_message());
  return dbError(b, code, cString(b.porter_error_name(code)), r,
      last.isEmpty ? cString(b.porter_strerror(code)) : last);
}
