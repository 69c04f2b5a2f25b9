// The pool's worker isolates and the messages between them and the pool.
// Every message is a plain object of sendable fields.
part of 'pool.dart';

/// The calls a worker knows how to make.
enum _Op {
  ping,
  stats,
  batch,
  dbOpen,
  dbClose,
  query,
  cursorOpen,
  cursorRead,
  cursorClose,
  fileRead,
  fileWrite,
  fileDelete,
  fileStat,
  fileList,
  readerOpen,
  readerRead,
  readerClose,
  http,
  httpOpen,
  httpRead,
  httpClose,
}

/// The arguments of a query or a streamed query. [params] are already
/// encoded (and so validated) on the calling isolate.
final class _QueryArgs {
  final String sql;
  final int session;
  final String? conninfo;
  final List<EncodedParam> params;
  final int chunkRows;
  const _QueryArgs(
      this.sql, this.session, this.conninfo, this.params, this.chunkRows);
}

/// The arguments of a file operation.
final class _FileArgs {
  final String path;
  final String? root;
  final int offset;
  final int? length;
  final Uint8List? data;
  final FileWriteFlags flags;
  final int? mode;
  final bool directory;
  const _FileArgs(this.path, this.root,
      {this.offset = 0,
      this.length,
      this.data,
      this.flags = FileWriteFlags.overwrite,
      this.mode,
      this.directory = false});
}

/// The arguments of an HTTP request, headers already checked.
final class _HttpArgs {
  final String method;
  final Uri url;
  final List<HttpHeader> headers;
  final Uint8List? body;
  final HttpOptions? options;
  const _HttpArgs(this.method, this.url, this.headers, this.body, this.options);
}

/// A stream read or close: the native handle's address, and what errors
/// name (the URL, the path).
final class _HandleArgs {
  final int address;
  final String name;
  const _HandleArgs(this.address, [this.name = '']);
}

/// What a worker answers to an HTTP stream's open: the handle and the head.
final class _HttpOpened {
  final int address;
  final PorterHttpResponse head;
  const _HttpOpened(this.address, this.head);
}

/// What a worker answers to a read at the end of an HTTP body: the head
/// again, now with its timings.
final class _HttpEnd {
  final PorterHttpResponse head;
  const _HttpEnd(this.head);
}

/// A request from the pool to a worker.
final class _Request {
  final int id;
  final _Op op;
  final int timeoutMs;
  final int delayMs;
  final Uint8List? payload;
  final Object? args;
  const _Request(
      this.id, this.op, this.timeoutMs, this.delayMs, this.payload, this.args);
}

/// A worker telling the pool the native id of the call it is about to make
/// for job [id], so a cancel can name it.
final class _Started {
  final int worker;
  final int id;
  final int callId;
  const _Started(this.worker, this.id, this.callId);
}

/// A worker's answer: [code] 0 with [result], or a failure.
final class _Reply {
  final int worker;
  final int id;
  final Object? result;
  final int code;
  final String name;
  final String message;

  /// The worker's exception itself when it carries more than a code
  /// (SQLSTATE, file error kind): exceptions are plain sendable objects.
  final PorterException? error;
  const _Reply(this.worker, this.id, this.result,
      [this.code = 0, this.name = '', this.message = '', this.error]);
}

/// A worker telling the pool where to send requests.
final class _Ready {
  final int worker;
  final SendPort port;
  const _Ready(this.worker, this.port);
}

/// A worker that could not start (libporter missing, ...).
final class _Failed {
  final int worker;
  final String error;
  const _Failed(this.worker, this.error);
}

/// What a worker isolate is started with.
final class _Start {
  final int worker;
  final String? libraryPath;
  final SendPort replies;
  const _Start(this.worker, this.libraryPath, this.replies);
}

/// A worker isolate: makes one blocking call at a time on its thread's
/// connection and answers the pool. It never waits for anything but a
/// native call: a stream's next chunk is a request of its own, so a paused
/// listener holds no worker.
void _workerMain(_Start start) {
  final porter = _openPorter(start);
  if (porter == null) return;
  final port = RawReceivePort();
  var current = 0;
  // Reported right before each call that sends exactly one request (see
  // Porter.onCallId), in the same synchronous code as the call.
  porter.onCallId =
      (callId) => start.replies.send(_Started(start.worker, current, callId));
  port.handler = (Object? msg) {
    if (msg is _Request) {
      current = msg.id;
      start.replies.send(_run(porter, start.worker, msg));
    } else {
      // Asked to stop: release this thread's connection now rather than
      // when the VM retires the thread.
      porter.disconnectThread();
      port.close();
    }
  };
  start.replies.send(_Ready(start.worker, port.sendPort));
}

/// Runs porter_cancel in a new isolate, which disconnects its thread
/// afterwards: the VM keeps its threads, and a connection left on one
/// would stay open in porterd for as long. Top-level, so the closure sent
/// holds only [libraryPath] and [callId].
Future<void> _cancelInIsolate(String? libraryPath, int callId) =>
    Isolate.run(() {
      final p = Porter(libraryPath: libraryPath);
      try {
        p.cancel(callId, timeout: const Duration(seconds: 2));
      } finally {
        p.disconnectThread();
      }
    });

/// Closes a native stream handle in a new isolate (for a pool already
/// closed); disconnects its thread afterwards as [_cancelInIsolate] does.
Future<void> _closeInIsolate(String? libraryPath, _Op op, int address) =>
    Isolate.run(() {
      final p = Porter(libraryPath: libraryPath);
      try {
        _closeHandle(p, op, address);
      } finally {
        p.disconnectThread();
      }
    });

void _closeHandle(Porter p, _Op op, int address) {
  final b = p.bindings;
  switch (op) {
    case _Op.cursorClose:
      DbCursor.adopt(b, address).close();
    case _Op.httpClose:
      b.porter_http_stream_free(
          Pointer<porter_http_stream>.fromAddress(address));
    case _Op.readerClose:
      b.porter_file_reader_free(
          Pointer<porter_file_reader>.fromAddress(address));
    default:
      throw ArgumentError.value(op, 'op', 'not a close');
  }
}

/// Opens libporter in a worker; on failure tells the pool why and returns
/// null (the isolate then exits, having no open port).
Porter? _openPorter(_Start start) {
  try {
    return Porter(libraryPath: start.libraryPath);
  } catch (e) {
    start.replies.send(_Failed(start.worker, '$e'));
    return null;
  }
}

DbSession? _session(int id) => id == 0 ? null : DbSession(id);

_Reply _run(Porter porter, int worker, _Request req) {
  final timeout =
      req.timeoutMs == 0 ? null : Duration(milliseconds: req.timeoutMs);
  _Reply ok(Object? v) => _Reply(worker, req.id, v);
  try {
    switch (req.op) {
      case _Op.ping:
        porter.ping(
            payload: req.payload,
            delay: req.delayMs < 0 ? null : Duration(milliseconds: req.delayMs),
            timeout: timeout);
        return ok(null);
      case _Op.stats:
        return ok(porter.stats(timeout: timeout));
      case _Op.batch:
        return ok(porter.batch(req.args as PorterBatch, timeout: timeout));
      case _Op.dbOpen:
        return ok(porter.dbOpen(req.args as String, timeout: timeout));
      case _Op.dbClose:
        porter.dbClose(DbSession(req.args as int), timeout: timeout);
        return ok(null);
      case _Op.query:
        final a = req.args as _QueryArgs;
        return ok(porter.query(a.sql,
            session: _session(a.session),
            conninfo: a.conninfo,
            params: a.params,
            timeout: timeout));
      case _Op.cursorOpen:
        final a = req.args as _QueryArgs;
        final cur = porter.queryCursor(a.sql,
            session: _session(a.session),
            conninfo: a.conninfo,
            params: a.params,
            chunkRows: a.chunkRows,
            timeout: timeout);
        // The pool owns it from here.
        return ok(cur.release());
      case _Op.cursorRead:
        final a = req.args as _HandleArgs;
        return ok(DbCursor.adopt(porter.bindings, a.address)
            .next(req.timeoutMs)
            ?.rows);
      case _Op.fileRead:
        final a = req.args as _FileArgs;
        return ok(porter.readFile(a.path,
            root: a.root, offset: a.offset, length: a.length, timeout: timeout));
      case _Op.fileWrite:
        final a = req.args as _FileArgs;
        porter.writeFile(a.path, a.data!,
            root: a.root, flags: a.flags, mode: a.mode, timeout: timeout);
        return ok(null);
      case _Op.fileDelete:
        final a = req.args as _FileArgs;
        porter.deleteFile(a.path,
            root: a.root, directory: a.directory, timeout: timeout);
        return ok(null);
      case _Op.fileStat:
        final a = req.args as _FileArgs;
        return ok(porter.statFile(a.path, root: a.root, timeout: timeout));
      case _Op.fileList:
        final a = req.args as _FileArgs;
        return ok(porter.listDir(a.path, root: a.root, timeout: timeout));
      case _Op.readerOpen:
        final a = req.args as _FileArgs;
        final rd = porter.openFileReader(a.path,
            root: a.root, offset: a.offset, length: a.length, timeout: timeout);
        return ok(releaseFileReader(rd));
      case _Op.readerRead:
        final a = req.args as _HandleArgs;
        final chunk = readFileChunkAt(porter.bindings, a.address, a.name, req.timeoutMs);
        return ok(chunk == null ? null : TransferableTypedData.fromList([chunk]));
      case _Op.http:
        final a = req.args as _HttpArgs;
        return ok(porter.httpWith(a.method, a.url, a.headers,
            body: a.body, options: a.options, timeout: timeout));
      case _Op.httpOpen:
        final a = req.args as _HttpArgs;
        final st = porter.httpStreamWith(a.method, a.url, a.headers,
            body: a.body, options: a.options, timeout: timeout);
        final head = st.response;
        return ok(_HttpOpened(st.release(), head));
      case _Op.httpRead:
        final a = req.args as _HandleArgs;
        // Not closed here: the pool owns it and closes it with httpClose.
        final chunk =
            readHttpChunkAt(porter.bindings, a.address, a.name, req.timeoutMs);
        if (chunk == null) {
          return ok(_HttpEnd(httpHeadAt(porter.bindings, a.address)));
        }
        return ok(TransferableTypedData.fromList([chunk]));
      case _Op.cursorClose || _Op.httpClose || _Op.readerClose:
        _closeHandle(porter, req.op, (req.args as _HandleArgs).address);
        return ok(null);
    }
  } on PorterException catch (e) {
    return _Reply(worker, req.id, null, e.code, e.name, e.message, e);
  } catch (e) {
    return _Reply(worker, req.id, null, porter_error.PORTER_E_INTERNAL,
        'PORTER_E_INTERNAL', '$e');
  }
}
