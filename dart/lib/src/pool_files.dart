// The pool's file calls: whole reads and writes, streamed reads, and
// what a path is.
part of 'pool.dart';

/// The file part of [PorterPool] (one concern per file; the class is
/// one).
mixin _PoolFiles on _PoolCore {
  /// Reads a file on a worker; see [Porter.readFile].
  Future<Uint8List> readFile(String path,
          {String? root,
          int offset = 0,
          int? length,
          Duration? timeout,
          PorterCancelToken? cancel}) {
    try {
      // Here, not only on the worker: a bad range fails the call with a
      // RangeError of this isolate's, and a length of 0 needs no worker.
      checkReadRange(offset, length, allowZero: true);
      if (length == 0) {
        if (root != null) checkNativeText(root, 'root');
        checkNativeText(path, 'path');
        if (_pool._closed) throw StateError('PorterPool is closed');
        return Future.value(Uint8List(0));
      }
    } catch (e, st) {
      return Future.error(e, st);
    }
    return _submit(_Op.fileRead, timeout, cancel,
            args: _FileArgs(path, root, offset: offset, length: length))
        .then((v) => v as Uint8List);
  }

  /// Reads from [offset] of [path] straight into [buffer] on a worker
  /// (no copy: the worker's native call writes into the buffer's memory);
  /// completes with how many bytes were read, `buffer.view(n)`. See
  /// [Porter.readFileInto]. Do not touch [buffer] until this completes:
  /// it completes only once no worker writes into it, also when [cancel]
  /// stops the read (then with [PorterCancelledException], the buffer
  /// holding part of the range or nothing).
  Future<int> readFileInto(String path, PorterBuffer buffer,
      {String? root,
      int offset = 0,
      int? length,
      Duration? timeout,
      PorterCancelToken? cancel}) async {
    final cap = readIntoCap(buffer, offset, length);
    // The worker gets the address only; the job holds the buffer itself
    // until no worker can write into it any more (see _Job.keepAlive).
    final job = _enqueue(_Op.fileReadInto, timeout, cancel,
        args: _FileArgs(path, root,
            offset: offset, length: cap, into: buffer.pointer.address),
        keepAlive: buffer);
    try {
      return await job.completer.future as int;
    } finally {
      // A cancel completes the call's future at once, while the worker
      // may still be writing into the buffer: the caller gets it back
      // only once that is over.
      await job.settled.future;
    }
  }

  /// A file as a [Stream] of chunks (porterd's file-chunk-size each),
  /// pulled by whichever worker is free while the listener wants more;
  /// cancelling the subscription closes the reader. [streamTimeout]
  /// bounds the whole stream.
  Stream<Uint8List> readFileStream(String path,
      {String? root,
      int offset = 0,
      int? length,
      Duration? timeout,
      Duration? streamTimeout,
      PorterCancelToken? cancel}) {
    try {
      streamMs(streamTimeout);
      checkReadRange(offset, length, allowZero: false);
    } catch (e, st) {
      return Stream.error(e, st);
    }
    final h = _HandleStream<Uint8List>(
        _pool,
        _Op.readerOpen,
        _FileArgs(path, root,
            offset: offset, length: length, streamTimeout: streamTimeout),
        _Op.readerRead,
        path,
        timeout,
        cancel,
        addressOf: (v) => v as int,
        chunkOf: (v) => v == null
            ? null
            : (v as TransferableTypedData).materialize().asUint8List());
    return h.stream(openOnListen: true);
  }

  /// Writes a file on a worker; see [Porter.writeFile].
  Future<void> writeFile(String path, Uint8List data,
          {String? root,
          FileWriteFlags flags = FileWriteFlags.replace,
          int? mode,
          Duration? timeout,
          PorterCancelToken? cancel}) =>
      _submit(_Op.fileWrite, timeout, cancel,
          args: _FileArgs(path, root,
              data: data, flags: flags, mode: mode)).then((_) {});

  /// Deletes a file (or an empty directory); see [Porter.deleteFile].
  Future<void> deleteFile(String path,
          {String? root, bool directory = false, Duration? timeout}) =>
      _submit(_Op.fileDelete, timeout, null,
              args: _FileArgs(path, root, directory: directory))
          .then((_) {});

  /// What a path is; see [Porter.statFile].
  Future<PorterFileInfo> statFile(String path,
          {String? root, bool followLinks = true, Duration? timeout}) =>
      _submit(_Op.fileStat, timeout, null,
              args: _FileArgs(path, root, follow: followLinks))
          .then((v) => v as PorterFileInfo);

  /// Creates a directory; see [Porter.createDirectory].
  Future<void> createDirectory(String path,
          {String? root, bool recursive = false, int? mode, Duration? timeout}) =>
      _submit(_Op.fileMkdir, timeout, null,
              args: _FileArgs(path, root, recursive: recursive, mode: mode))
          .then((_) {});

  /// Renames (moves) a file or directory; see [Porter.renameFile].
  Future<void> renameFile(String from, String to,
          {String? root, bool replace = true, Duration? timeout}) =>
      _submit(_Op.fileRename, timeout, null,
              args: _FileArgs(from, root, to: to, replace: replace))
          .then((_) {});

  /// Copies a regular file; completes with the bytes copied. See
  /// [Porter.copyFile].
  Future<int> copyFile(String from, String to,
          {String? root, bool replace = true, Duration? timeout}) =>
      _submit(_Op.fileCopy, timeout, null,
              args: _FileArgs(from, root, to: to, replace: replace))
          .then((v) => v as int);

  /// A directory's entries; see [Porter.listDir].
  Future<List<PorterDirEntry>> listDir(String path,
          {String? root, Duration? timeout}) =>
      _submit(_Op.fileList, timeout, null, args: _FileArgs(path, root))
          .then((v) => v as List<PorterDirEntry>);


  /// Watches [path] in [root] ("" : the root itself), a file or a
  /// directory (whose events name its entries, not their subtrees), as a
  /// [Stream] of [PorterFileEvent]s: created, modified, deleted, moved,
  /// and overflow when porterd had to drop some. The watch starts when the
  /// stream is listened to (the open fails the stream with a
  /// [PorterFileException] for an escape or a missing path), and ends
  /// when the watched path itself is deleted or moved away; cancelling
  /// the subscription (or [cancel]) closes the native watch and stops it
  /// in porterd.
  ///
  /// The pool polls: each read waits at most [pollWait] in porterd for
  /// events, and after one that found nothing the next comes [pollInterval]
  /// later, so a quiet watch holds no worker; events arrive within about
  /// [pollInterval] + [pollWait]. A paused subscription polls nothing
  /// (porterd keeps the events, bounded, and reports an overflow if it had
  /// to drop some; it reclaims a watch not read for its file-stream-idle
  /// time). [timeout] bounds the open.
  Stream<PorterFileEvent> watch(String path,
      {String? root,
      Duration? timeout,
      Duration pollInterval = const Duration(milliseconds: 250),
      Duration pollWait = const Duration(milliseconds: 50),
      PorterCancelToken? cancel}) {
    if (pollInterval.isNegative || pollWait <= Duration.zero) {
      return Stream.error(ArgumentError(
          'pollInterval must not be negative and pollWait must be positive'));
    }
    final h = _HandleStream<List<PorterFileEvent>>(_pool, _Op.watchOpen,
        _FileArgs(path, root), _Op.watchRead, path, timeout, cancel,
        readTimeout: pollWait,
        isIdle: (events) => events.isEmpty,
        idlePoll: pollInterval,
        addressOf: (v) => v as int,
        chunkOf: (v) => v as List<PorterFileEvent>?);
    return h.stream(openOnListen: true).expand((events) => events);
  }
}

