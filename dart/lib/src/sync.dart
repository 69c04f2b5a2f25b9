// The synchronous API: blocking calls on the calling thread's connection.
import 'dart:convert';
import 'dart:ffi';
import 'dart:typed_data';

import 'package:ffi/ffi.dart';

import 'batch.dart';
import 'bindings.g.dart';
import 'codec.dart';
import 'db.dart';
import 'errors.dart';
import 'files.dart';
import 'http.dart';
import 'library.dart';
import 'stats.dart';

part 'sync_batch.dart';

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
final class Porter {
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
      return buf.cast<Utf8>().toDartString(length: n);
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

  // ---- PostgreSQL ----

  /// Opens a database session on [conninfo] (a libpq conninfo string or
  /// URI). The session lives in porterd and may be used from any isolate
  /// of this process (send the [DbSession] over). Blocks for at most
  /// [timeout]. Throws [PorterDbException] (code PORTER_E_DB_CONNECT with
  /// libpq's message when the server refuses), [PorterTimeoutException].
  DbSession dbOpen(String conninfo, {Duration? timeout, int callId = 0}) {
    final ms = timeoutMs(timeout);
    final ci = conninfo.toNativeUtf8();
    final out = calloc<Uint64>();
    try {
      final rc = _b.porter_db_open(ci.cast(), callId, ms, out);
      if (rc < 0) _throwDb(rc, nullptr);
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
    if (rc < 0) _throwDb(rc, nullptr);
  }

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
  /// [newCallId]), ...
  DbResult query(String sql,
      {DbSession? session,
      String? conninfo,
      List<Object?> params = const [],
      Duration? timeout,
      int callId = 0}) {
    _checkTarget(session, conninfo);
    final ms = timeoutMs(timeout);
    final np = NativeParams(encodeParams(params));
    final s = sql.toNativeUtf8();
    final ci = session == null ? conninfo!.toNativeUtf8() : nullptr;
    final out = calloc<Pointer<porter_db_result>>();
    try {
      final rc = _b.porter_db_query(session?.id ?? 0, ci.cast(), s.cast(),
          np.array, np.length, callId, ms, out);
      final r = out.value;
      try {
        if (rc < 0) _throwDb(rc, r);
        return readResult(_b, r);
      } finally {
        _b.porter_db_result_free(r);
      }
    } finally {
      calloc.free(out);
      if (ci != nullptr) calloc.free(ci);
      calloc.free(s);
      np.free();
    }
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
    _checkTarget(session, conninfo);
    if (chunkRows < 1 || chunkRows > 100000) {
      throw RangeError.range(chunkRows, 1, 100000, 'chunkRows');
    }
    final ms = timeoutMs(timeout);
    final np = NativeParams(encodeParams(params));
    final s = sql.toNativeUtf8();
    final ci = session == null ? conninfo!.toNativeUtf8() : nullptr;
    final out = calloc<Pointer<porter_db_cursor>>();
    try {
      final rc = _b.porter_db_cursor_open(session?.id ?? 0, ci.cast(),
          s.cast(), np.array, np.length, chunkRows, streamMs(streamTimeout),
          callId, ms, out);
      if (rc < 0) _throwDb(rc, nullptr);
      return DbCursor.own(_b, out.value);
    } finally {
      calloc.free(out);
      if (ci != nullptr) calloc.free(ci);
      calloc.free(s);
      np.free();
    }
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
    final cur = queryCursor(sql,
        session: session,
        conninfo: conninfo,
        params: params,
        chunkRows: chunkRows,
        timeout: timeout,
        streamTimeout: streamTimeout,
        callId: callId);
    var n = 0;
    try {
      final ms = timeoutMs(timeout);
      for (;;) {
        final part = cur.next(ms);
        if (part == null) return n;
        n++;
        if (!onChunk(part.rows)) return n;
      }
    } finally {
      cur.close();
    }
  }

  void _checkTarget(DbSession? session, String? conninfo) {
    if (session == null && (conninfo == null || conninfo.isEmpty)) {
      throw ArgumentError('a query needs a session or a conninfo');
    }
  }

  Never _throwDb(int code, Pointer<porter_db_result> r) {
    final last = _lastMessage();
    throw dbError(_b, code, errorName(code), r, last.isEmpty ? errorMessage(code) : last);
  }

  /// The calling thread's last error message (read at once after the
  /// failing call, before anything else can run on this thread).
  String _lastMessage() =>
      _b.porter_last_error_message().cast<Utf8>().toDartString();

  // ---- HTTP ----

  /// Performs an HTTP request through porterd and returns the whole
  /// response (its body is limited to [HttpOptions.maxResponse], by default
  /// the daemon's http-max-response, 8 MiB; stream larger bodies with
  /// [httpEach] or [PorterPool.httpStream]).
  ///
  /// [method] is any token ("GET", "POST", "PUT", "DELETE", "HEAD", ...);
  /// [headers] are sent as given (an empty value sends the header empty);
  /// [body] is null, a String (sent as UTF-8) or bytes. Only http and https
  /// URLs are accepted, for the request and every redirect.
  ///
  /// Any HTTP status is a response: check [PorterHttpResponse.status] or call
  /// [PorterHttpResponse.ensureSuccess]. Blocks this thread for at most [timeout]
  /// (null: 5 s). Throws [PorterHttpException] when no response came
  /// (scheme or host not allowed, too many redirects, body too large,
  /// connection or TLS failure; [PorterHttpException.status] carries the
  /// status of a refused redirect), [PorterTimeoutException],
  /// [PorterCancelledException] (see [newCallId]), and
  /// [PorterConnectionLostException] for a method other than GET or HEAD
  /// whose outcome is unknown.
  PorterHttpResponse http(String method, Uri url,
          {Map<String, Object> headers = const {},
          Object? body,
          HttpOptions? options,
          Duration? timeout,
          int callId = 0}) =>
      httpWith(method, url, requestHeaders(headers),
          body: httpBodyBytes(body),
          options: options,
          timeout: timeout,
          callId: callId);

  /// [http] with the headers as a list in order (a name may repeat).
  PorterHttpResponse httpWith(String method, Uri url, List<HttpHeader> headers,
      {Uint8List? body,
      HttpOptions? options,
      Duration? timeout,
      int callId = 0}) {
    final ms = timeoutMs(timeout);
    final req = NativeHttpRequest(method, '$url', headers, body, options);
    final out = calloc<Pointer<porter_http_response>>();
    try {
      final rc = _b.porter_http_request(
          req.method,
          req.url,
          req.headers,
          req.headerCount,
          req.body,
          req.bodyLength,
          req.options,
          callId,
          ms,
          out);
      if (rc < 0) throw httpError(_b, rc, '$url');
      return _takeResponse(out.value);
    } finally {
      calloc.free(out);
      req.free();
    }
  }

  /// GETs [url], following redirects (see [http]).
  PorterHttpResponse httpGet(Uri url,
      {Map<String, Object> headers = const {},
      HttpOptions? options,
      Duration? timeout,
      int callId = 0}) {
    if (headers.isNotEmpty || options != null) {
      return http('GET', url,
          headers: headers, options: options, timeout: timeout, callId: callId);
    }
    final ms = timeoutMs(timeout);
    final u = '$url'.toNativeUtf8();
    final out = calloc<Pointer<porter_http_response>>();
    try {
      final rc = _b.porter_http_get(u.cast(), callId, ms, out);
      if (rc < 0) throw httpError(_b, rc, '$url');
      return _takeResponse(out.value);
    } finally {
      calloc.free(out);
      calloc.free(u);
    }
  }

  /// POSTs [json] with `Content-Type: application/json`, following
  /// redirects (see [http]). A String is sent as it is; any other value is
  /// encoded with `jsonEncode` first.
  PorterHttpResponse httpPostJson(Uri url, Object? json,
      {Map<String, Object> headers = const {},
      HttpOptions? options,
      Duration? timeout,
      int callId = 0}) {
    final text = json is String ? json : jsonEncode(json);
    if (headers.isNotEmpty || options != null) {
      return http('POST', url,
          headers: {'Content-Type': 'application/json', ...headers},
          body: text,
          options: options,
          timeout: timeout,
          callId: callId);
    }
    final ms = timeoutMs(timeout);
    final bytes = utf8.encode(text);
    final u = '$url'.toNativeUtf8();
    final buf = calloc<Uint8>(bytes.isEmpty ? 1 : bytes.length);
    final out = calloc<Pointer<porter_http_response>>();
    try {
      buf.asTypedList(bytes.length).setAll(0, bytes);
      final rc = _b.porter_http_post_json(
          u.cast(), buf.cast(), bytes.length, callId, ms, out);
      if (rc < 0) throw httpError(_b, rc, '$url');
      return _takeResponse(out.value);
    } finally {
      calloc.free(out);
      calloc.free(buf);
      calloc.free(u);
    }
  }

  /// Copies native response [r] into Dart and frees it.
  PorterHttpResponse _takeResponse(Pointer<porter_http_response> r) {
    try {
      return readHttpResponse(_b, r);
    } finally {
      _b.porter_http_response_free(r);
    }
  }

  /// Starts a streamed request (arguments as for [http]) and returns once
  /// the status and headers have arrived: read the body with
  /// [HttpStream.read] and always [HttpStream.close] it (in a `finally`).
  /// The body may be of any size; the daemon holds about one chunk
  /// ([HttpOptions.chunkSize]) and pauses the transfer while nobody reads.
  ///
  /// Read it without an `await` between the reads (see [HttpStream]): a
  /// stream lives on the daemon worker of this thread's connection. For an
  /// async [Stream] use [PorterPool.httpStream].
  HttpStream httpStream(Uri url,
          {String method = 'GET',
          Map<String, Object> headers = const {},
          Object? body,
          HttpOptions? options,
          Duration? timeout,
          int callId = 0}) =>
      httpStreamWith(method, url, requestHeaders(headers),
          body: httpBodyBytes(body),
          options: options,
          timeout: timeout,
          callId: callId);

  /// [httpStream] with the headers as a list in order.
  HttpStream httpStreamWith(String method, Uri url, List<HttpHeader> headers,
      {Uint8List? body,
      HttpOptions? options,
      Duration? timeout,
      int callId = 0}) {
    final ms = timeoutMs(timeout);
    final req = NativeHttpRequest(method, '$url', headers, body, options);
    final out = calloc<Pointer<porter_http_stream>>();
    try {
      final rc = _b.porter_http_stream_open(
          req.method,
          req.url,
          req.headers,
          req.headerCount,
          req.body,
          req.bodyLength,
          req.options,
          callId,
          ms,
          out);
      if (rc < 0) throw httpError(_b, rc, '$url');
      final p = out.value;
      try {
        return HttpStream.own(_b, p, '$url');
      } catch (_) {
        _b.porter_http_stream_free(p);
        rethrow;
      }
    } finally {
      calloc.free(out);
      req.free();
    }
  }

  /// Streams a response (arguments as for [httpStream]) and hands each
  /// chunk of the body to [onChunk] on this thread; return false to stop
  /// early (the transfer is aborted). The stream is closed before this
  /// returns, however it ends. Returns the response head, with timings
  /// when the body was read to its end.
  PorterHttpResponse httpEach(Uri url, bool Function(Uint8List chunk) onChunk,
      {String method = 'GET',
      Map<String, Object> headers = const {},
      Object? body,
      HttpOptions? options,
      Duration? timeout,
      int callId = 0}) {
    final s = httpStream(url,
        method: method,
        headers: headers,
        body: body,
        options: options,
        timeout: timeout,
        callId: callId);
    try {
      final ms = timeoutMs(timeout);
      for (;;) {
        final chunk = s.read(ms);
        if (chunk == null) return s.finalResponse();
        if (!onChunk(chunk)) return s.response;
      }
    } finally {
      s.close();
    }
  }

  // ---- Files ----

  /// Reads [length] bytes (null: to the end) from [offset] of [path] in
  /// [root] (null: porterd's first root). The whole range is held in
  /// memory; for large files use [openFileReader] or [readFileEach]. Blocks for at most
  /// [timeout]. Throws [PorterFileException] with an errno-derived
  /// [FileErrorKind].
  Uint8List readFile(String path,
      {String? root,
      int offset = 0,
      int? length,
      Duration? timeout,
      int callId = 0}) {
    final ms = timeoutMs(timeout);
    return _withPath(root, path, (r, p) {
      final out = calloc<Pointer<porter_bytes>>();
      try {
        final rc = _b.porter_file_read(
            r, p, offset, length ?? 0, callId, ms, out);
        if (rc < 0) _throwFile(rc, path);
        final bytes = out.value;
        try {
          final n = bytes.ref.len;
          return n == 0
              ? Uint8List(0)
              : Uint8List.fromList(bytes.ref.data.asTypedList(n));
        } finally {
          _b.porter_bytes_free(bytes);
        }
      } finally {
        calloc.free(out);
      }
    });
  }

  /// Opens [path] for reading chunk by chunk (each as large as porterd's
  /// file-chunk-size): [FileReader.read] and always [FileReader.close] (in
  /// a `finally`). Any isolate may read it, one read at a time.
  FileReader openFileReader(String path,
      {String? root,
      int offset = 0,
      int? length,
      Duration? timeout,
      Duration? streamTimeout,
      int callId = 0}) {
    final ms = timeoutMs(timeout);
    return _withPath(root, path, (r, p) {
      final out = calloc<Pointer<porter_file_reader>>();
      try {
        final rc = _b.porter_file_reader_open(r, p, offset, length ?? 0,
            streamMs(streamTimeout), callId, ms, out);
        if (rc < 0) _throwFile(rc, path);
        return newFileReader(_b, out.value, path);
      } finally {
        calloc.free(out);
      }
    });
  }

  /// Reads [path] chunk by chunk and hands each chunk to [onChunk] on this
  /// thread; return false to stop early. The reader is closed before this
  /// returns, however it ends. Returns the number of chunks handed over.
  int readFileEach(String path, bool Function(Uint8List chunk) onChunk,
      {String? root,
      int offset = 0,
      int? length,
      Duration? timeout,
      Duration? streamTimeout,
      int callId = 0}) {
    final rd = openFileReader(path,
        root: root,
        offset: offset,
        length: length,
        timeout: timeout,
        streamTimeout: streamTimeout,
        callId: callId);
    var n = 0;
    try {
      final ms = timeoutMs(timeout);
      for (;;) {
        final chunk = rd.read(ms);
        if (chunk == null) return n;
        n++;
        if (!onChunk(chunk)) return n;
      }
    } finally {
      rd.close();
    }
  }

  /// Writes [data] to [path] in [root] (binary; NUL bytes are fine) with
  /// [flags] (default: create or replace), creating files with [mode]
  /// (null: 0600). Large data is sent in chunks. Blocks for at most
  /// [timeout] for the whole write.
  void writeFile(String path, Uint8List data,
      {String? root,
      FileWriteFlags flags = FileWriteFlags.replace,
      int? mode,
      Duration? timeout,
      int callId = 0}) {
    final ms = timeoutMs(timeout);
    _withPath(root, path, (r, p) {
      final buf = data.isEmpty ? nullptr : calloc<Uint8>(data.length);
      try {
        if (data.isNotEmpty) buf.asTypedList(data.length).setAll(0, data);
        final rc = _b.porter_file_write(r, p, buf.cast(), data.length,
            flags.bits, mode ?? 0, callId, ms);
        if (rc < 0) _throwFile(rc, path);
      } finally {
        if (buf != nullptr) calloc.free(buf);
      }
    });
  }

  /// Deletes the file [path] (with [directory], the empty directory).
  void deleteFile(String path,
      {String? root,
      bool directory = false,
      Duration? timeout,
      int callId = 0}) {
    final ms = timeoutMs(timeout);
    _withPath(root, path, (r, p) {
      final rc = _b.porter_file_delete(r, p, directory ? 1 : 0, callId, ms);
      if (rc < 0) _throwFile(rc, path);
    });
  }

  /// What [path] is (symlinks inside the root are followed).
  PorterFileInfo statFile(String path,
      {String? root, Duration? timeout, int callId = 0}) {
    final ms = timeoutMs(timeout);
    return _withPath(root, path, (r, p) {
      final info = calloc<porter_file_info>();
      try {
        final rc = _b.porter_file_stat(r, p, callId, ms, info);
        if (rc < 0) _throwFile(rc, path);
        final i = info.ref;
        return PorterFileInfo(
            type: fileTypeOf(i.type),
            size: i.size,
            mode: i.mode,
            modified: DateTime.fromMicrosecondsSinceEpoch(i.mtime_ns ~/ 1000),
            uid: i.uid,
            gid: i.gid,
            links: i.nlink);
      } finally {
        calloc.free(info);
      }
    });
  }

  /// The entries of directory [path] ("" : the root), sorted by name.
  List<PorterDirEntry> listDir(String path,
      {String? root, Duration? timeout, int callId = 0}) {
    final ms = timeoutMs(timeout);
    return _withPath(root, path, (r, p) {
      final out = calloc<Pointer<porter_file_list>>();
      final type = calloc<Int>();
      final size = calloc<Uint64>();
      final mtime = calloc<Int64>();
      try {
        final rc = _b.porter_file_list_dir(r, p, callId, ms, out);
        if (rc < 0) _throwFile(rc, path);
        final l = out.value;
        try {
          final n = _b.porter_file_list_count(l);
          return [
            for (var i = 0; i < n; i++)
              if (_b.porter_file_list_entry(l, i, type, size, mtime) == 0)
                PorterDirEntry(
                    _b.porter_file_list_name(l, i).cast<Utf8>().toDartString(),
                    fileTypeOf(type.value),
                    size.value,
                    DateTime.fromMicrosecondsSinceEpoch(mtime.value ~/ 1000))
          ];
        } finally {
          _b.porter_file_list_free(l);
        }
      } finally {
        calloc.free(out);
        calloc.free(type);
        calloc.free(size);
        calloc.free(mtime);
      }
    });
  }

  /// Runs [body] with native copies of [root] (nullptr when null) and
  /// [path], freed afterwards.
  T _withPath<T>(String? root, String path,
      T Function(Pointer<Char> root, Pointer<Char> path) body) {
    final r = root == null ? nullptr : root.toNativeUtf8();
    final p = path.toNativeUtf8();
    try {
      return body(r.cast(), p.cast());
    } finally {
      if (r != nullptr) calloc.free(r);
      calloc.free(p);
    }
  }

  Never _throwFile(int code, String path) => throw fileError(_b, code, path);

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
    final msgPtr = _b.porter_last_error_message();
    var message = msgPtr.cast<Utf8>().toDartString();
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

  /// Frees the native snapshot now; calling it again does nothing.
  void free() {
    if (_ptr == nullptr) return;
    _finalizer!.detach(this);
    _b.porter_stats_free(_ptr);
    _ptr = nullptr;
  }
}
