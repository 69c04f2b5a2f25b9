// Streamed HTTP request bodies: a request whose body is written piece by
// piece after it was opened (porter_http_upload_*), for uploads of any
// size without holding them in memory.
import 'dart:ffi';
import 'dart:typed_data';

import 'package:ffi/ffi.dart';

import 'bindings.g.dart';
import 'errors.dart';
import 'http.dart';
import 'native.dart';

/// Request headers an upload must not carry: libporter frames the body
/// itself (Content-Length from the size given, else chunked).
const Set<String> uploadFramingHeaders = {
  'content-length',
  'transfer-encoding',
  'expect'
};

/// Checks an upload's [headers] and [bodySize] (null: unknown) before
/// anything is allocated or sent. Throws [ArgumentError].
void checkUpload(String method, List<HttpHeader> headers, int? bodySize) {
  if (method.toUpperCase() == 'HEAD') {
    throw ArgumentError.value(method, 'method', 'a HEAD request has no body');
  }
  for (final h in headers) {
    if (uploadFramingHeaders.contains(h.name.toLowerCase())) {
      throw ArgumentError.value(h.name, 'headers',
          'libporter frames an upload itself; give bodySize instead');
    }
  }
  if (bodySize != null && bodySize < 0) {
    throw ArgumentError.value(bodySize, 'bodySize', 'must not be negative');
  }
}

/// The safety net for uploads dropped without [HttpUpload.close]: a
/// NativeFinalizer on porter_http_upload_free, which never waits (the
/// transfer is aborted by libporter's background thread). One per isolate.
NativeFinalizer? _uploadFinalizer;

/// A request whose body is being written ([Porter.httpUpload]): [write]
/// the body piece by piece, then [finish] to get the response as an
/// [HttpStream]. Owned by Dart: [finish], [close] or [free] releases it,
/// with a finalizer as the safety net. Used by one thread at a time; any
/// thread may write it.
///
/// porterd holds at most one piece (1 MiB) of it and libcurl sends it as
/// the server takes it, so [write] returns only once porterd has handed
/// the previous piece on: a slow server slows the writer down.
final class HttpUpload implements Finalizable {
  final PorterBindings _b;
  Pointer<porter_http_upload> _ptr;
  final bool _owned;

  /// The URL asked for.
  final String url;

  HttpUpload._(this._b, this._ptr, this.url, this._owned) {
    if (_owned) {
      final f = _uploadFinalizer ??=
          NativeFinalizer(_b.addresses.porter_http_upload_free.cast());
      f.attach(this, _ptr.cast(), detach: this);
    }
  }

  /// Takes ownership of native upload [p], just opened for [url].
  factory HttpUpload.own(
          PorterBindings b, Pointer<porter_http_upload> p, String url) =>
      HttpUpload._(b, p, url, true);

  /// Uses an upload owned elsewhere (by [address]): nothing here frees it.
  factory HttpUpload.adopt(PorterBindings b, int address, String url) =>
      HttpUpload._(b, Pointer<porter_http_upload>.fromAddress(address), url,
          false);

  /// The native address, to hand the upload to another isolate.
  int get address => _ptr.address;

  /// Whether it was finished, closed, freed or released.
  bool get isClosed => _ptr == nullptr;

  /// Gives up ownership without freeing (another isolate will).
  int release() {
    final a = _ptr.address;
    if (_owned && _ptr != nullptr) _uploadFinalizer!.detach(this);
    _ptr = nullptr;
    return a;
  }

  /// Sends [data] as the next bytes of the body, blocking for at most
  /// [timeoutMs] (0: the default) until porterd has taken all of it.
  /// Returns true; false when the server answered before taking the whole
  /// body (it does not want the rest: stop writing and [finish] for its
  /// answer). Throws [PorterHttpException] when the transfer failed,
  /// [PorterInvalidArgumentException] when the writes pass the size given
  /// at the open; every later write then fails the same way.
  bool write(Uint8List data, int timeoutMs, {int callId = 0}) {
    if (_ptr == nullptr) throw StateError('HTTP upload closed');
    final buf = data.isEmpty ? nullptr : calloc<Uint8>(data.length);
    try {
      if (data.isNotEmpty) buf.asTypedList(data.length).setAll(0, data);
      final rc = _b.porter_http_upload_write(
          _ptr, buf.cast(), data.length, callId, timeoutMs);
      if (rc < 0) throw httpError(_b, rc, url);
      return rc == 0;
    } finally {
      if (buf != nullptr) calloc.free(buf);
    }
  }

  /// Ends the body and waits up to [timeoutMs] for the response's head:
  /// returns it as an [HttpStream] to read and close. An owned upload is
  /// released either way (a failed one is aborted in porterd); an adopted
  /// one stays its owner's to free. Throws [PorterHttpException],
  /// [PorterInvalidArgumentException] when the writes fell short of the
  /// size given at the open.
  HttpStream finish(int timeoutMs, {int callId = 0}) {
    if (_ptr == nullptr) throw StateError('HTTP upload closed');
    try {
      final p = nativeOut(
              (out) => _b.porter_http_upload_finish(
                  _ptr, callId, timeoutMs, out.cast()),
              (rc) => httpError(_b, rc, url))
          .cast<porter_http_stream>();
      // Owned from here: a failure reading the head frees it.
      return HttpStream.own(_b, p, url);
    } finally {
      if (_owned) free();
    }
  }

  /// Aborts an unfinished upload, waiting up to [timeoutMs] for porterd to
  /// confirm, and frees it; calling it again does nothing.
  void close([int timeoutMs = 1000]) {
    if (_ptr == nullptr) return;
    if (_owned) _uploadFinalizer!.detach(this);
    _b.porter_http_upload_close(_ptr, timeoutMs);
    _ptr = nullptr;
  }

  /// Frees the upload without waiting (libporter's background thread
  /// aborts an unfinished transfer).
  void free() {
    if (_ptr == nullptr) return;
    if (_owned) _uploadFinalizer!.detach(this);
    _b.porter_http_upload_free(_ptr);
    _ptr = nullptr;
  }
}
