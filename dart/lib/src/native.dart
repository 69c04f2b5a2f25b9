// Native memory the package copies out of libporter: bytes, text, and
// the one chunk pump every stream read (HTTP body, file reader, file
// watch) goes through.
import 'dart:convert';
import 'dart:ffi';
import 'dart:typed_data';

import 'package:ffi/ffi.dart';

/// A Dart copy of [n] bytes at [p] (an empty list when [n] is 0 or [p] is
/// null): the native buffer stays the caller's to free.
Uint8List copyNative(Pointer<NativeType> p, int n) => n == 0 || p == nullptr
    ? Uint8List(0)
    : Uint8List.fromList(p.cast<Uint8>().asTypedList(n));

/// A NUL-terminated string owned by libporter (empty for nullptr), copied
/// and decoded as UTF-8 with malformed sequences replaced. Every text that
/// comes from libporter or porterd is read with it, never with
/// `toDartString()`, which throws a FormatException on malformed UTF-8:
/// header values may be Latin-1, and a message is cut at its buffer's
/// size (libporter's last error keeps 511 bytes), possibly inside a
/// character of a name the caller gave, which would turn the
/// PorterException being built into a FormatException.
String cString(Pointer<Char> p) {
  if (p == nullptr) return '';
  final u = p.cast<Utf8>();
  return utf8.decode(p.cast<Uint8>().asTypedList(u.length),
      allowMalformed: true);
}

/// Throws [ArgumentError] when [s], a text about to be handed to
/// libporter as a C string ([what] names it: path, sql, url, ...), holds
/// a NUL character. C would see only what comes before it: deleting
/// 'notes.txt\u0000.bak' would delete 'notes.txt', a query would run its
/// first part. Call it for every text of a call before allocating any.
void checkNativeText(String s, String what) {
  if (s.contains('\u0000')) {
    throw ArgumentError.value(
        s, what, 'must not contain a NUL character (C would cut it there)');
  }
}

/// A NUL-terminated UTF-8 copy of [s] in memory from `calloc` (free it
/// with `calloc.free`), after [checkNativeText]. Every text the package
/// hands to libporter is made with it, never with `toNativeUtf8()`
/// (whose copy would be cut at a NUL, and comes from `malloc`);
/// tests/dart/check_api_use.py refuses the latter in lib/.
Pointer<Char> nativeText(String s, String what) {
  checkNativeText(s, what);
  return s.toNativeUtf8(allocator: calloc).cast<Char>();
}

/// One read of a libporter stream whose read call has the shape
/// `int porter_X_read(handle, call_id, timeout_ms, const void **data,
/// size_t *len)`: 1 with a chunk, 0 at the end, a negative code on
/// failure.
///
/// [read] makes the native call with the two out-parameters; [fail] turns
/// a negative code into the exception to throw, and runs right after
/// [read] on the same thread, before anything else can overwrite the
/// thread's last error. Returns a copy of the chunk (the native one is
/// valid only until the next read), or null at the end.
Uint8List? readNativeChunk(
    int Function(Pointer<Pointer<Void>> data, Pointer<Size> len) read,
    Exception Function(int code) fail) {
  final data = calloc<Pointer<Void>>();
  final len = calloc<Size>();
  try {
    final rc = read(data, len);
    if (rc < 0) throw fail(rc);
    if (rc == 0) return null;
    return copyNative(data.value, len.value);
  } finally {
    calloc.free(data);
    calloc.free(len);
  }
}

/// Runs [call] with an out-parameter for one native pointer and returns
/// what it stored there. A negative code from [call] throws what [fail]
/// makes of it, right after the call on the same thread (before anything
/// can overwrite the thread's last error). Callers cast the result to the
/// handle type they asked for.
Pointer<Void> nativeOut(int Function(Pointer<Pointer<Void>> out) call,
    Exception Function(int code) fail) {
  final out = calloc<Pointer<Void>>();
  try {
    final rc = call(out);
    if (rc < 0) throw fail(rc);
    return out.value;
  } finally {
    calloc.free(out);
  }
}

/// Hands every chunk [next] returns to [onChunk] until the end (null) or
/// a false from [onChunk], then runs [close] however the loop ended (the
/// end, a false, an exception), which a `sync*` generator left with
/// `break` would never do. Returns the number of chunks handed over and
/// whether the end was reached.
(int, bool) drainChunks<C extends Object>(C? Function() next,
    bool Function(C chunk) onChunk, void Function() close) {
  var n = 0;
  try {
    for (;;) {
      final chunk = next();
      if (chunk == null) return (n, true);
      n++;
      if (!onChunk(chunk)) return (n, false);
    }
  } finally {
    close();
  }
}
