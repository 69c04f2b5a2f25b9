/// Porter for Dart: asynchronous I/O through the porterd daemon, from any
/// isolate, without blocking the ones that must stay responsive.
///
/// * [Porter] makes blocking calls on the calling thread. Use it in
///   background isolates only (never on Flutter's UI isolate).
/// * [PorterPool] runs the same calls on a bounded pool of worker isolates
///   and hands back [Future]s, so the calling isolate never blocks.
/// * PostgreSQL: [DbSession]s usable from any isolate, typed [Row]s,
///   transactions ([PorterPool.transaction]), streamed results
///   ([PorterPool.queryStream], [Porter.queryCursor]).
/// * HTTP and HTTPS: [PorterHttpResponse]s with status, headers, body, effective
///   URL, redirects and timings; streamed bodies ([PorterPool.httpStream],
///   [Porter.httpEach]) of any size with backpressure, and a
///   `package:http` client ([PorterHttpClient]).
/// * Files inside porterd's roots: read, write (atomic if asked), delete,
///   stat, list, mkdir, rename, copy, streamed reads, and watches
///   ([PorterPool.watch]).
/// * Batches of pings, queries, file reads and HTTP requests run
///   concurrently by the daemon in one call ([PorterBatch]).
/// * Failures are [PorterException]s, with subclasses for the common cases
///   ([PorterTimeoutException], [PorterUnreachableException], ...), SQL
///   errors ([PorterDbException] with SQLSTATE, DETAIL, HINT, position,
///   context and the object involved; [DbResult.notices]) and file
///   errors ([PorterFileException] with an errno-derived [FileErrorKind]),
///   HTTP failures ([PorterHttpException] with the HTTP status where the
///   peer gave one).
library porter;

export 'src/batch.dart';
export 'src/bindings.g.dart'
    show
        PorterBindings,
        porter_error,
        porter_file_flag,
        porter_file_type,
        PORTER_PROTOCOL_VERSION,
        PORTER_VERSION_MAJOR,
        PORTER_VERSION_MINOR,
        PORTER_VERSION_PATCH,
        PORTER_VERSION_STRING;
export 'src/codec.dart' show DbParam, PgInterval, PgType;
export 'src/db.dart'
    show
        DbColumn,
        DbColumns,
        DbCursor,
        DbResult,
        DbResultPart,
        DbSession,
        Row,
        byteaOid;
export 'src/db_diag.dart' show DbFieldReader, DbNotice, PorterDbException;
export 'src/errors.dart';
export 'src/files.dart'
    show
        FileErrorKind,
        FileReader,
        PorterBuffer,
        FileType,
        FileWriteFlags,
        PorterDirEntry,
        PorterFileException,
        PorterFileInfo;
export 'src/file_watch.dart'
    show FileEventBatch, FileEventKind, FileWatch, PorterFileEvent;
export 'src/http.dart'
    show
        HttpHeader,
        HttpOptions,
        HttpStream,
        HttpTimings,
        PorterHttpException,
        PorterHttpResponse;
export 'src/http_client.dart' show PorterHttpClient;
export 'src/http_upload.dart' show HttpUpload;
export 'src/library.dart' show openPorterLibrary, porterLibraryEnv, porterLibraryName;
export 'src/pool.dart'
    show
        PorterCancelToken,
        PorterHttpStream,
        PorterPool,
        PorterTimeouts,
        PorterTransaction;
export 'src/stats.dart';
export 'src/sync.dart' show Porter, StatsSnapshot;
