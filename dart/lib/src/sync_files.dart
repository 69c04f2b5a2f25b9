// Porter's file calls: whole reads and writes, streamed reads, and what
// a path is.
part of 'sync.dart';

/// The file part of [Porter] (one concern per file; the class is one).
mixin _FileCalls {
  PorterBindings get _b;

  /// Reads [length] bytes (null: to the end) from [offset] of [path] in
  /// [root] (null: porterd's first root). The whole range is held in
  /// memory; for large files use [openFileReader] or [readFileEach].
  /// A [length] of 0 reads nothing and asks porterd nothing (as
  /// [readFileIntoPointer] with no capacity): an empty list.
  /// Blocks for at most [timeout]. Throws [PorterFileException] with an
  /// errno-derived [FileErrorKind], [RangeError] for a negative [offset]
  /// or [length].
  Uint8List readFile(String path,
      {String? root,
      int offset = 0,
      int? length,
      Duration? timeout,
      int callId = 0}) {
    checkReadRange(offset, length, allowZero: true);
    final ms = timeoutMs(timeout);
    if (length == 0) {
      if (root != null) checkNativeText(root, 'root');
      checkNativeText(path, 'path');
      return Uint8List(0);
    }
    return _withPath(root, path, (r, p) {
      final out = calloc<Pointer<porter_bytes>>();
      try {
        final rc = _b.porter_file_read(
            r, p, offset, length ?? 0, callId, ms, out);
        if (rc < 0) throw fileError(_b, rc, path);
        final bytes = out.value;
        try {
          return copyNative(bytes.ref.data, bytes.ref.len);
        } finally {
          _b.porter_bytes_free(bytes);
        }
      } finally {
        calloc.free(out);
      }
    });
  }

  /// Reads from [offset] of [path] in [root] straight into [buffer], as
  /// pread(2) would: at most [length] bytes (null: the buffer's capacity;
  /// never more than it), fewer only at the end of the file (0 at or past
  /// it). Returns how many; they are `buffer.view(n)`. Nothing is
  /// allocated and nothing copied: porterd passes the open file and it is
  /// read into the buffer in this thread (as bytes through the socket
  /// when porterd passes no descriptor). On failure the buffer may hold
  /// part of the range. Blocks for at most [timeout]. Throws
  /// [PorterFileException], [RangeError] for a negative [offset] or
  /// [length].
  int readFileInto(String path, PorterBuffer buffer,
      {String? root,
      int offset = 0,
      int? length,
      Duration? timeout,
      int callId = 0}) {
    // buffer is Finalizable: it, and the memory its bytes own, stay alive
    // until this returns.
    return readFileIntoPointer(
        path, buffer.pointer, readIntoCap(buffer, offset, length),
        root: root, offset: offset, timeout: timeout, callId: callId);
  }

  /// [readFileInto] for native memory the caller owns: at most [capacity]
  /// bytes at [buffer] (not nullptr unless [capacity] is 0, which reads
  /// nothing and asks porterd nothing). The memory must stay allocated
  /// until this returns. Returns how many bytes were read.
  int readFileIntoPointer(String path, Pointer<Uint8> buffer, int capacity,
      {String? root, int offset = 0, Duration? timeout, int callId = 0}) {
    RangeError.checkNotNegative(capacity, 'capacity');
    RangeError.checkNotNegative(offset, 'offset');
    if (buffer == nullptr && capacity != 0) {
      throw ArgumentError.value(buffer, 'buffer', 'nullptr with a capacity');
    }
    final ms = timeoutMs(timeout);
    return _withPath(root, path, (r, p) {
      final n = calloc<Size>();
      try {
        final rc = _b.porter_file_read_into(
            r, p, offset, buffer.cast(), capacity, callId, ms, n);
        if (rc < 0) throw fileError(_b, rc, path);
        return n.value;
      } finally {
        calloc.free(n);
      }
    });
  }

  /// Opens [path] for reading chunk by chunk (each as large as porterd's
  /// file-chunk-size): [FileReader.read] and always [FileReader.close] (in
  /// a `finally`). Any isolate may read it, one read at a time. [length]
  /// bytes from [offset] (null: to the end). Throws [RangeError] for a
  /// negative [offset] or a [length] below 1.
  FileReader openFileReader(String path,
      {String? root,
      int offset = 0,
      int? length,
      Duration? timeout,
      Duration? streamTimeout,
      int callId = 0}) {
    checkReadRange(offset, length, allowZero: false);
    final ms = timeoutMs(timeout);
    final stream = streamMs(streamTimeout);
    return _withPath(root, path, (r, p) {
      final out = calloc<Pointer<porter_file_reader>>();
      try {
        final rc = _b.porter_file_reader_open(
            r, p, offset, length ?? 0, stream, callId, ms, out);
        if (rc < 0) throw fileError(_b, rc, path);
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
    final ms = timeoutMs(timeout);
    final rd = openFileReader(path,
        root: root,
        offset: offset,
        length: length,
        timeout: timeout,
        streamTimeout: streamTimeout,
        callId: callId);
    final (n, _) = drainChunks(() => rd.read(ms), onChunk, rd.close);
    return n;
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
        if (rc < 0) throw fileError(_b, rc, path);
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
      if (rc < 0) throw fileError(_b, rc, path);
    });
  }

  /// What [path] is. Symlinks inside the root are followed; with
  /// [followLinks] false a symlink at [path] is reported itself
  /// ([FileType.symlink], lstat semantics).
  PorterFileInfo statFile(String path,
      {String? root,
      bool followLinks = true,
      Duration? timeout,
      int callId = 0}) {
    final ms = timeoutMs(timeout);
    return _withPath(root, path, (r, p) {
      final info = calloc<porter_file_info>()
        ..ref.struct_size = sizeOf<porter_file_info>();
      try {
        final rc = followLinks
            ? _b.porter_file_stat(r, p, callId, ms, info)
            : _b.porter_file_lstat(r, p, callId, ms, info);
        if (rc < 0) throw fileError(_b, rc, path);
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
        if (rc < 0) throw fileError(_b, rc, path);
        final l = out.value;
        try {
          final n = _b.porter_file_list_count(l);
          return [
            for (var i = 0; i < n; i++)
              if (_b.porter_file_list_entry(l, i, type, size, mtime) == 0)
                PorterDirEntry(
                    cString(_b.porter_file_list_name(l, i)),
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

  /// Starts watching [path] in [root] ("" : the root itself), a file or a
  /// directory (whose events name its entries, not their subtrees):
  /// [FileWatch.read] batches of events and always [FileWatch.close] it.
  /// porterd resolves the path with the same confinement as an open and
  /// watches what it found. For a [Stream] of events use
  /// [PorterPool.watch]. Throws [PorterFileException] (an escape, a path
  /// that does not exist), [PorterBusyException] over porterd's limit of
  /// file streams per uid, [PorterInvalidArgumentException] for something
  /// neither a file nor a directory.
  FileWatch watchFile(String path,
      {String? root, Duration? timeout, int callId = 0}) {
    final ms = timeoutMs(timeout);
    return _withPath(root, path, (r, p) {
      final w = nativeOut(
              (out) => _b.porter_file_watch_open(r, p, callId, ms, out.cast()),
              (rc) => fileError(_b, rc, path))
          .cast<porter_file_watch>();
      return FileWatch.own(_b, w, path);
    });
  }

  /// Creates the directory [path] in [root] with [mode] (null: 0700;
  /// porterd masks it with its file-max-dir-mode). With [recursive] the
  /// missing parents are made too and an existing directory is fine;
  /// without it an existing one fails with [FileErrorKind.exists].
  void createDirectory(String path,
      {String? root,
      bool recursive = false,
      int? mode,
      Duration? timeout,
      int callId = 0}) {
    final ms = timeoutMs(timeout);
    _withPath(root, path, (r, p) {
      final rc = _b.porter_file_mkdir(
          r, p, mode ?? 0, recursive ? PORTER_FILE_PARENTS : 0, callId, ms);
      if (rc < 0) throw fileError(_b, rc, path);
    });
  }

  /// Renames (moves) [from] to [to] inside [root], atomically replacing
  /// an existing [to] unless [replace] is false (then it fails with
  /// [FileErrorKind.exists]). A symlink is moved itself. Across file
  /// systems it fails with [FileErrorKind.io]: copy, then delete.
  void renameFile(String from, String to,
          {String? root,
          bool replace = true,
          Duration? timeout,
          int callId = 0}) =>
      _fromTo(root, from, to, replace, timeout, (r, f, t, flags, ms) {
        final rc = _b.porter_file_rename(r, f, t, flags, callId, ms);
        if (rc < 0) throw fileError(_b, rc, from);
      });

  /// Copies the regular file [from] to [to] inside [root] (sharing
  /// extents where the file system can); [to] is never seen half-copied.
  /// With [replace] false an existing [to] fails with
  /// [FileErrorKind.exists]. Returns the bytes copied.
  int copyFile(String from, String to,
          {String? root,
          bool replace = true,
          Duration? timeout,
          int callId = 0}) =>
      _fromTo(root, from, to, replace, timeout, (r, f, t, flags, ms) {
        final size = calloc<Uint64>();
        try {
          final rc = _b.porter_file_copy(r, f, t, flags, callId, ms, size);
          if (rc < 0) throw fileError(_b, rc, from);
          return size.value;
        } finally {
          calloc.free(size);
        }
      });

  /// Runs [call] for a rename or copy of [from] to [to]: native paths,
  /// the flags for [replace], the timeout in milliseconds.
  T _fromTo<T>(
      String? root,
      String from,
      String to,
      bool replace,
      Duration? timeout,
      T Function(Pointer<Char> root, Pointer<Char> from, Pointer<Char> to,
              int flags, int ms)
          call) {
    final ms = timeoutMs(timeout);
    final flags = replace ? 0 : PORTER_FILE_NO_REPLACE;
    return _withPaths(root, from, to, (r, f, t) => call(r, f, t, flags, ms));
  }
}

/// Runs [body] with native copies of [root] (nullptr when null) and
/// [path], freed afterwards.
T _withPath<T>(String? root, String path,
        T Function(Pointer<Char> root, Pointer<Char> path) body) =>
    _withPaths(root, path, null, (r, p, _) => body(r, p));

/// [_withPath] for calls naming two paths ([to] nullptr when null).
T _withPaths<T>(String? root, String from, String? to,
    T Function(Pointer<Char> root, Pointer<Char> from, Pointer<Char> to)
        body) {
  // Every name is checked before anything is allocated.
  if (root != null) checkNativeText(root, 'root');
  checkNativeText(from, to == null ? 'path' : 'from');
  if (to != null) checkNativeText(to, 'to');
  final Pointer<Char> r = root == null ? nullptr : nativeText(root, 'root');
  final f = nativeText(from, 'path');
  final Pointer<Char> t = to == null ? nullptr : nativeText(to, 'to');
  try {
    return body(r, f, t);
  } finally {
    if (r != nullptr) calloc.free(r);
    calloc.free(f);
    if (t != nullptr) calloc.free(t);
  }
}
