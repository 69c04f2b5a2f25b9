// Files through porterd: plain Dart descriptions of files, their errors,
// and a streaming reader.
import 'dart:ffi';
import 'dart:typed_data';

import 'package:ffi/ffi.dart';

import 'bindings.g.dart';
import 'errors.dart';
import 'native.dart';

/// How [Porter.writeFile] writes (porter.h's `porter_file_flag`).
final class FileWriteFlags {
  /// The bits, combined with |.
  final int bits;

  const FileWriteFlags._(this.bits);

  /// Overwrite an existing file from its start (no other flag).
  static const FileWriteFlags overwrite = FileWriteFlags._(0);

  /// Create the file when missing.
  static const FileWriteFlags create =
      FileWriteFlags._(porter_file_flag.PORTER_FILE_CREATE);

  /// Empty an existing file first.
  static const FileWriteFlags truncate =
      FileWriteFlags._(porter_file_flag.PORTER_FILE_TRUNCATE);

  /// Write at the end (not with [atomic]).
  static const FileWriteFlags append =
      FileWriteFlags._(porter_file_flag.PORTER_FILE_APPEND);

  /// Fail with [FileErrorKind.exists] when the file exists.
  static const FileWriteFlags exclusive =
      FileWriteFlags._(porter_file_flag.PORTER_FILE_EXCLUSIVE);

  /// Durable all-or-nothing replace (temp file, fsync, rename, fsync of
  /// the directory): readers and crashes see the old content or the new.
  static const FileWriteFlags atomic =
      FileWriteFlags._(porter_file_flag.PORTER_FILE_ATOMIC);

  /// fsync before the call returns.
  static const FileWriteFlags sync =
      FileWriteFlags._(porter_file_flag.PORTER_FILE_SYNC);

  /// Create or replace the whole content: [create] | [truncate].
  static const FileWriteFlags replace = FileWriteFlags._(
      porter_file_flag.PORTER_FILE_CREATE | porter_file_flag.PORTER_FILE_TRUNCATE);

  /// Both sets of flags.
  FileWriteFlags operator |(FileWriteFlags other) =>
      FileWriteFlags._(bits | other.bits);
}

/// What a path is.
enum FileType { unknown, regular, directory, symlink, other }

FileType fileTypeOf(int t) => switch (t) {
      porter_file_type.PORTER_FILE_TYPE_REGULAR => FileType.regular,
      porter_file_type.PORTER_FILE_TYPE_DIRECTORY => FileType.directory,
      porter_file_type.PORTER_FILE_TYPE_SYMLINK => FileType.symlink,
      porter_file_type.PORTER_FILE_TYPE_OTHER => FileType.other,
      _ => FileType.unknown,
    };

/// What [Porter.statFile] reports. A plain Dart object.
final class PorterFileInfo {
  final FileType type;
  final int size;

  /// Permission bits, e.g. 0x1a4 (0644).
  final int mode;
  final DateTime modified;
  final int uid;
  final int gid;
  final int links;

  const PorterFileInfo(
      {required this.type,
      required this.size,
      required this.mode,
      required this.modified,
      required this.uid,
      required this.gid,
      required this.links});
}

/// One entry of a directory listing. A plain Dart object.
final class PorterDirEntry {
  final String name;

  /// A symlink is [FileType.symlink] (not followed).
  final FileType type;
  final int size;
  final DateTime modified;

  const PorterDirEntry(this.name, this.type, this.size, this.modified);

  @override
  String toString() => '$name ($type, $size bytes)';
}

/// Native memory to read files into without a copy ([Porter.readFileInto],
/// [PorterPool.readFileInto]): [capacity] bytes from `malloc`, seen from
/// Dart as [bytes]. Reading into the same buffer again costs no new
/// memory, nor the page faults of fresh memory, which for large files
/// cost more than the read itself.
///
/// [bytes] owns the memory: it is freed when neither this buffer nor
/// [bytes] (nor any view of it) is reachable any more, never before, so no
/// Dart code can reach freed memory through it. There is no `free()` for
/// that reason: keep one buffer and reuse it. A buffer cannot be sent to
/// another isolate (the pool hands its workers the address, and keeps
/// the buffer alive until they are done with it).
final class PorterBuffer implements Finalizable {
  final Pointer<Uint8> _ptr;

  /// Its size in bytes.
  final int capacity;

  /// The whole buffer; a read fills `bytes[0..n)` ([view] is that part).
  /// Do not touch it while a read into it runs.
  final Uint8List bytes;

  PorterBuffer._(this._ptr, this.capacity, this.bytes);

  /// A buffer of [capacity] bytes (at least 1), not zeroed. Throws
  /// [RangeError] for a capacity below 1, [ArgumentError] when the memory
  /// cannot be had.
  factory PorterBuffer(int capacity) {
    RangeError.checkValueInInterval(capacity, 1, 1 << 48, 'capacity');
    final p = malloc<Uint8>(capacity);
    // The typed list frees the memory when it is collected.
    return PorterBuffer._(
        p, capacity, p.asTypedList(capacity, finalizer: malloc.nativeFree));
  }

  /// Where it is, for native code (valid while this buffer is reachable).
  Pointer<Uint8> get pointer => _ptr;

  /// The first [length] bytes, a view (no copy) valid as long as it is
  /// reachable.
  Uint8List view(int length) => Uint8List.sublistView(bytes, 0, length);
}

/// Checks the range of a whole read or a reader before anything is sent:
/// porter.h takes [offset] and [length] as uint64_t, where a negative Dart
/// int would arrive as a number near 2^64, and reads to the end of the
/// file for a length of 0, where a Dart caller asking for 0 bytes (a
/// length computed as `size - offset`) wants none: [Porter.readFile]
/// returns an empty list for it without asking porterd, and a reader,
/// which cannot be empty without porterd, refuses it ([allowZero] false).
/// Throws [RangeError].
void checkReadRange(int offset, int? length, {required bool allowZero}) {
  RangeError.checkNotNegative(offset, 'offset');
  if (length == null) return;
  if (allowZero) {
    RangeError.checkNotNegative(length, 'length');
  } else if (length < 1) {
    throw RangeError.value(length, 'length',
        'must be at least 1 (null reads to the end of the file)');
  }
}

/// How many bytes a read into [buffer] asks for: its capacity, or
/// [length] when smaller. Throws [RangeError] for a negative [length] or
/// [offset].
int readIntoCap(PorterBuffer buffer, int offset, int? length) {
  RangeError.checkNotNegative(offset, 'offset');
  if (length == null) return buffer.capacity;
  RangeError.checkNotNegative(length, 'length');
  return length < buffer.capacity ? length : buffer.capacity;
}

/// The kind of a file failure, from the errno porterd got (porter.h's
/// PORTER_E_FILE_* codes).
enum FileErrorKind {
  /// ENOENT.
  notFound,

  /// EACCES, EPERM.
  permission,

  /// EISDIR.
  isDirectory,

  /// EEXIST.
  exists,

  /// ENOSPC, EDQUOT.
  noSpace,

  /// The path would leave its root ("..", an absolute path, a symlink
  /// pointing out, a magic link).
  escape,

  /// EIO and other failures of the system call.
  io,

  /// ENOTDIR.
  notDirectory,

  /// No root of that name is configured in porterd.
  noRoot,
}

/// A failed file operation: [kind] says what went wrong (the daemon's
/// message names the errno), [path] which path.
class PorterFileException extends PorterException {
  final FileErrorKind kind;
  final String path;

  const PorterFileException(
      int code, String name, String message, this.kind, this.path)
      : super(code, name, message);

  @override
  String toString() => 'PorterFileException($name $code, $kind, $path): $message';
}

/// The kind for a PORTER_E_FILE_* [code]; null for any other code.
FileErrorKind? fileErrorKind(int code) => switch (code) {
      porter_error.PORTER_E_FILE_NOT_FOUND => FileErrorKind.notFound,
      porter_error.PORTER_E_FILE_PERM => FileErrorKind.permission,
      porter_error.PORTER_E_FILE_ISDIR => FileErrorKind.isDirectory,
      porter_error.PORTER_E_FILE_EXISTS => FileErrorKind.exists,
      porter_error.PORTER_E_FILE_NOSPACE => FileErrorKind.noSpace,
      porter_error.PORTER_E_FILE_ESCAPE => FileErrorKind.escape,
      porter_error.PORTER_E_FILE_IO => FileErrorKind.io,
      porter_error.PORTER_E_FILE_NOTDIR => FileErrorKind.notDirectory,
      porter_error.PORTER_E_FILE_ROOT => FileErrorKind.noRoot,
      _ => null,
    };

/// A [FileReader] owning native reader [p], just opened for [path].
FileReader newFileReader(
        PorterBindings b, Pointer<porter_file_reader> p, String path) =>
    FileReader._(b, p, path);

/// The exception for a failed file call with [code], read right after the
/// call on the same thread (the thread's last error message is valid only
/// until its next call).
PorterException fileError(PorterBindings b, int code, String path) {
  var message = cString(b.porter_last_error_message());
  final name = cString(b.porter_error_name(code));
  if (message.isEmpty) message = cString(b.porter_strerror(code));
  final kind = fileErrorKind(code);
  if (kind == null) return PorterException.fromCode(code, name, message);
  return PorterFileException(code, name, message, kind, path);
}

/// The safety net for readers dropped without [FileReader.close]: a
/// NativeFinalizer on porter_file_reader_free, which never waits. One per
/// isolate.
NativeFinalizer? _readerFinalizer;

/// A file read chunk by chunk ([Porter.openFileReader]): [read] until null,
/// and always [close] (in a `finally`). Used by one thread at a time; any
/// thread may read it.
final class FileReader implements Finalizable {
  final PorterBindings _b;
  Pointer<porter_file_reader> _ptr;

  /// The path being read.
  final String path;

  /// The file's size when it was opened.
  final int size;

  FileReader._(this._b, this._ptr, this.path)
      : size = _b.porter_file_reader_size(_ptr) {
    final f = _readerFinalizer ??=
        NativeFinalizer(_b.addresses.porter_file_reader_free.cast());
    f.attach(this, _ptr.cast(), detach: this);
  }

  /// Whether [close] was called.
  bool get isClosed => _ptr == nullptr;

  /// The next chunk (a copy owned by Dart), or null at the end. Blocks for
  /// at most [timeoutMs] (0: the default) when a chunk must be fetched.
  Uint8List? read(int timeoutMs, {int callId = 0}) {
    if (_ptr == nullptr) throw StateError('file reader closed');
    return readFileChunkAt(_b, _ptr.address, path, timeoutMs, callId: callId);
  }

  /// Closes the reader (telling porterd when chunks remain, waiting up
  /// to [timeoutMs]); calling it again does nothing.
  void close([int timeoutMs = 1000]) {
    if (_ptr == nullptr) return;
    _readerFinalizer!.detach(this);
    _b.porter_file_reader_close(_ptr, timeoutMs);
    _ptr = nullptr;
  }

  /// Frees the reader without waiting.
  void free() {
    if (_ptr == nullptr) return;
    _readerFinalizer!.detach(this);
    _b.porter_file_reader_free(_ptr);
    _ptr = nullptr;
  }
}

/// Gives up [rd]'s ownership of its native reader without closing it (the
/// pool closes it later, from whichever worker is free) and returns its
/// address.
int releaseFileReader(FileReader rd) {
  final a = rd._ptr.address;
  if (rd._ptr != nullptr) _readerFinalizer!.detach(rd);
  rd._ptr = nullptr;
  return a;
}

/// The next chunk of the native reader at [address] (a copy), or null at
/// the end; see [FileReader.read].
Uint8List? readFileChunkAt(
        PorterBindings b, int address, String path, int timeoutMs,
        {int callId = 0}) =>
    readNativeChunk(
        (data, len) => b.porter_file_reader_read(
            Pointer<porter_file_reader>.fromAddress(address),
            callId,
            timeoutMs,
            data,
            len),
        (rc) => fileError(b, rc, path));
