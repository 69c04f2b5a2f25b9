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
  fileRead,
  fileReadInto,
  fileWrite,
  fileDelete,
  fileStat,
  fileList,
  fileMkdir,
  fileRename,
  fileCopy,
  readerOpen,
  readerRead,
  watchOpen,
  watchRead,
  http,
  httpOpen,
  httpRead,
  uploadOpen,
  uploadWrite,
  uploadFinish,
}

/// The arguments of a query or a streamed query. [params] are already
/// encoded (and so validated) on the calling isolate.
final class _QueryArgs {
  final String sql;
  final int session;
  final String? conninfo;
  final List<EncodedParam> params;
  final int chunkRows;

  /// Streams: the whole-stream deadline (null: none).
  final Duration? streamTimeout;
  const _QueryArgs(
      this.sql, this.session, this.conninfo, this.params, this.chunkRows,
      [this.streamTimeout]);
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

  /// Streams: the whole-stream deadline (null: none).
  final Duration? streamTimeout;

  /// Rename and copy: the destination.
  final String? to;

  /// A read into caller memory: its address ([length] is its size).
  final int into;

  /// Stat: follow a symlink at [path]; rename and copy: replace an
  /// existing [to]; mkdir: make the missing parents.
  final bool follow;
  final bool replace;
  final bool recursive;
  const _FileArgs(this.path, this.root,
      {this.offset = 0,
      this.length,
      this.data,
      this.flags = FileWriteFlags.overwrite,
      this.mode,
      this.directory = false,
      this.streamTimeout,
      this.to,
      this.into = 0,
      this.follow = true,
      this.replace = true,
      this.recursive = false});
}

/// The arguments of an HTTP request, headers already checked.
final class _HttpArgs {
  final String method;
  final Uri url;
  final List<HttpHeader> headers;
  final Uint8List? body;
  final HttpOptions? options;

  /// An upload's announced body size; -1: unknown (sent chunked).
  final int bodySize;
  const _HttpArgs(this.method, this.url, this.headers, this.body, this.options,
      {this.bodySize = -1});
}

/// One write of an upload: the handle, what errors name, the bytes.
final class _UploadWrite {
  final int address;
  final String url;
  final TransferableTypedData data;
  const _UploadWrite(this.address, this.url, this.data);
}

/// A stream read: the native handle's address, and what errors name (the
/// URL, the path).
final class _HandleArgs {
  final int address;
  final String name;
  const _HandleArgs(this.address, [this.name = '']);
}

/// A cursor chunk whose rows came with notices (a chunk without any is
/// its plain list of rows).
final class _RowsWithNotices {
  final List<Row> rows;
  final List<DbNotice> notices;
  const _RowsWithNotices(this.rows, this.notices);
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

/// A request from the pool to a worker. [callId] is the native call id
/// the pool picked when the call was queued (0 for a stream read, which
/// then uses its open's id), so the pool can cancel it without asking.
final class _Request {
  final int id;
  final _Op op;
  final int timeoutMs;
  final int delayMs;
  final Uint8List? payload;
  final Object? args;
  final int callId;
  const _Request(this.id, this.op, this.timeoutMs, this.delayMs, this.payload,
      this.args, this.callId);
}

/// A worker's answer: [code] 0 with [result], or a failure.
final class _Reply {
  final int worker;
  final int id;
  final Object? result;
  final int code;
  final String name;
  final String message;

  /// What the call threw, when it carries more than a code: a
  /// [PorterException] (SQLSTATE, file error kind; exceptions are plain
  /// sendable objects), or an [ArgumentError] rebuilt from text (see
  /// [_argumentError]).
  final Object? error;
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
  port.handler = (Object? msg) {
    if (msg is _Request) {
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

/// Frees the native stream handle at [address] (opened by [op]'s open)
/// without waiting: libporter's background thread tells porterd. Safe on
/// any isolate, the UI one included.
void _freeNative(PorterBindings b, _Op op, int address) {
  switch (op) {
    case _Op.cursorOpen:
      b.porter_db_cursor_free(Pointer<porter_db_cursor>.fromAddress(address));
    case _Op.httpOpen || _Op.uploadFinish:
      b.porter_http_stream_free(Pointer<porter_http_stream>.fromAddress(address));
    case _Op.readerOpen:
      b.porter_file_reader_free(Pointer<porter_file_reader>.fromAddress(address));
    case _Op.watchOpen:
      b.porter_file_watch_free(Pointer<porter_file_watch>.fromAddress(address));
    case _Op.uploadOpen:
      b.porter_http_upload_free(Pointer<porter_http_upload>.fromAddress(address));
    default:
      throw ArgumentError.value(op, 'op', 'opens no stream');
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
  final id = req.callId;
  _Reply ok(Object? v) => _Reply(worker, req.id, v);
  try {
    switch (req.op) {
      case _Op.ping:
        porter.ping(
            payload: req.payload,
            delay: req.delayMs < 0 ? null : Duration(milliseconds: req.delayMs),
            timeout: timeout,
            callId: id);
        return ok(null);
      case _Op.stats:
        return ok(porter.stats(timeout: timeout, callId: id));
      case _Op.batch:
        return ok(porter.batch(req.args as PorterBatch,
            timeout: timeout, callId: id));
      case _Op.dbOpen:
        return ok(
            porter.dbOpen(req.args as String, timeout: timeout, callId: id));
      case _Op.dbClose:
        porter.dbClose(DbSession(req.args as int),
            timeout: timeout, callId: id);
        return ok(null);
      case _Op.query:
        final a = req.args as _QueryArgs;
        return ok(porter.query(a.sql,
            session: _session(a.session),
            conninfo: a.conninfo,
            params: a.params,
            timeout: timeout,
            callId: id));
      case _Op.cursorOpen:
        final a = req.args as _QueryArgs;
        final cur = porter.queryCursor(a.sql,
            session: _session(a.session),
            conninfo: a.conninfo,
            params: a.params,
            chunkRows: a.chunkRows,
            timeout: timeout,
            streamTimeout: a.streamTimeout,
            callId: id);
        // The pool owns it from here.
        return ok(cur.release());
      case _Op.cursorRead:
        final a = req.args as _HandleArgs;
        final part =
            DbCursor.adopt(porter.bindings, a.address).next(req.timeoutMs);
        if (part == null) return ok(null);
        return ok(part.notices.isEmpty
            ? part.rows
            : _RowsWithNotices(part.rows, part.notices));
      case _Op.fileRead:
        final a = req.args as _FileArgs;
        return ok(porter.readFile(a.path,
            root: a.root,
            offset: a.offset,
            length: a.length,
            timeout: timeout,
            callId: id));
      case _Op.fileReadInto:
        final a = req.args as _FileArgs;
        // Memory of the pool's caller, kept alive there until this call
        // has returned (PorterPool.readFileInto waits for it).
        return ok(porter.readFileIntoPointer(
            a.path, Pointer<Uint8>.fromAddress(a.into), a.length!,
            root: a.root, offset: a.offset, timeout: timeout, callId: id));
      case _Op.fileWrite:
        final a = req.args as _FileArgs;
        porter.writeFile(a.path, a.data!,
            root: a.root,
            flags: a.flags,
            mode: a.mode,
            timeout: timeout,
            callId: id);
        return ok(null);
      case _Op.fileDelete:
        final a = req.args as _FileArgs;
        porter.deleteFile(a.path,
            root: a.root, directory: a.directory, timeout: timeout, callId: id);
        return ok(null);
      case _Op.fileStat:
        final a = req.args as _FileArgs;
        return ok(porter.statFile(a.path,
            root: a.root, followLinks: a.follow, timeout: timeout, callId: id));
      case _Op.fileList:
        final a = req.args as _FileArgs;
        return ok(porter.listDir(a.path,
            root: a.root, timeout: timeout, callId: id));
      case _Op.fileMkdir:
        final a = req.args as _FileArgs;
        porter.createDirectory(a.path,
            root: a.root,
            recursive: a.recursive,
            mode: a.mode,
            timeout: timeout,
            callId: id);
        return ok(null);
      case _Op.fileRename:
        final a = req.args as _FileArgs;
        porter.renameFile(a.path, a.to!,
            root: a.root, replace: a.replace, timeout: timeout, callId: id);
        return ok(null);
      case _Op.fileCopy:
        final a = req.args as _FileArgs;
        return ok(porter.copyFile(a.path, a.to!,
            root: a.root, replace: a.replace, timeout: timeout, callId: id));
      case _Op.readerOpen:
        final a = req.args as _FileArgs;
        final rd = porter.openFileReader(a.path,
            root: a.root,
            offset: a.offset,
            length: a.length,
            timeout: timeout,
            streamTimeout: a.streamTimeout,
            callId: id);
        return ok(releaseFileReader(rd));
      case _Op.readerRead:
        final a = req.args as _HandleArgs;
        final chunk = readFileChunkAt(porter.bindings, a.address, a.name, req.timeoutMs);
        return ok(chunk == null ? null : TransferableTypedData.fromList([chunk]));
      case _Op.watchOpen:
        final a = req.args as _FileArgs;
        return ok(porter
            .watchFile(a.path, root: a.root, timeout: timeout, callId: id)
            .release());
      case _Op.watchRead:
        final a = req.args as _HandleArgs;
        // Not freed here: the pool owns it.
        final batch = FileWatch.adopt(porter.bindings, a.address, a.name)
            .read(req.timeoutMs);
        return ok(batch.events.isEmpty && batch.ended ? null : batch.events);
      case _Op.http:
        final a = req.args as _HttpArgs;
        return ok(porter.httpWith(a.method, a.url, a.headers,
            body: a.body, options: a.options, timeout: timeout, callId: id));
      case _Op.httpOpen:
        final a = req.args as _HttpArgs;
        final st = porter.httpStreamWith(a.method, a.url, a.headers,
            body: a.body, options: a.options, timeout: timeout, callId: id);
        final head = st.response;
        return ok(_HttpOpened(st.release(), head));
      case _Op.uploadOpen:
        final a = req.args as _HttpArgs;
        return ok(porter
            .httpUploadWith(a.method, a.url, a.headers,
                bodySize: a.bodySize < 0 ? null : a.bodySize,
                options: a.options,
                timeout: timeout,
                callId: id)
            .release());
      case _Op.uploadWrite:
        final a = req.args as _UploadWrite;
        // Not freed here: the pool owns it.
        return ok(HttpUpload.adopt(porter.bindings, a.address, a.url)
            .write(a.data.materialize().asUint8List(), req.timeoutMs));
      case _Op.uploadFinish:
        final a = req.args as _HandleArgs;
        // The upload stays the pool's to free; the stream becomes the
        // pool's too.
        final st = HttpUpload.adopt(porter.bindings, a.address, a.name)
            .finish(req.timeoutMs);
        final head = st.response;
        return ok(_HttpOpened(st.release(), head));
      case _Op.httpRead:
        final a = req.args as _HandleArgs;
        // Not freed here: the pool owns it and frees it.
        final chunk =
            readHttpChunkAt(porter.bindings, a.address, a.name, req.timeoutMs);
        if (chunk == null) {
          return ok(_HttpEnd(httpHeadAt(porter.bindings, a.address)));
        }
        return ok(TransferableTypedData.fromList([chunk]));
    }
  } on PorterException catch (e) {
    return _Reply(worker, req.id, null, e.code, e.name, e.message, e);
  } on ArgumentError catch (e) {
    // An argument refused on the worker (a NUL in a path or a query) is
    // the caller's ArgumentError, as with [Porter], not an internal
    // failure of the pool.
    return _Reply(worker, req.id, null, porter_error.PORTER_E_INVAL,
        'PORTER_E_INVAL', '${e.message}', _argumentError(e));
  } catch (e) {
    return _Reply(worker, req.id, null, porter_error.PORTER_E_INTERNAL,
        'PORTER_E_INTERNAL', '$e');
  }
}

/// [e] rebuilt from text: its invalid value may be any object, and one
/// that cannot be sent to the pool's isolate would make the reply's send
/// throw in the worker, which would then die with the call unanswered.
ArgumentError _argumentError(ArgumentError e) {
  final message = e.message == null ? null : '${e.message}';
  if (e is RangeError) return RangeError(message ?? '$e');
  final value = e.invalidValue;
  return value == null
      ? ArgumentError(message, e.name)
      : ArgumentError.value('$value', e.name, message);
}
