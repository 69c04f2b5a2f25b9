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
          PorterCancelToken? cancel}) =>
      _submit(_Op.fileRead, timeout, cancel,
              args: _FileArgs(path, root, offset: offset, length: length))
          .then((v) => v as Uint8List);

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

}
