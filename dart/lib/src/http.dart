// HTTP through porterd: options, responses, streams and their errors.
//
// Everything here that crosses isolates (responses, options, timings) is a
// plain Dart object. A native response is copied out and freed before a
// call returns; a native stream is owned by an [HttpStream] and freed by
// its close(), with a NativeFinalizer on its non-waiting free as the
// safety net.
import 'dart:convert';
import 'dart:ffi';
import 'dart:typed_data';

import 'package:ffi/ffi.dart';

import 'bindings.g.dart';
import 'errors.dart';
import 'native.dart';

/// Per-request options, mirroring `porter_http_options` of porter.h.
///
/// TLS verification and the hosts a request may reach are the daemon's
/// settings (`http-tls-verify`, `http-ca-file`, `http-allow-hosts`), not a
/// request's: an app cannot turn certificate checks off for itself.
final class HttpOptions {
  /// Follow 301/302/303/307/308 redirects. Unlike the C struct (whose zero
  /// value does not follow), the default here is true, as for
  /// `porter_http_get`.
  final bool followRedirects;

  /// The most redirects to follow; 0: the daemon's limit (default 10).
  /// More fail with [PorterHttpException] (PORTER_E_HTTP_REDIRECTS).
  final int maxRedirects;

  /// The largest body accepted, in bytes; 0: the daemon's limit (8 MiB by
  /// default for whole responses, none for streams). A larger body fails
  /// with PORTER_E_HTTP_TOO_LARGE.
  final int maxResponse;

  /// Bounds the transfer itself; null: the call's timeout does (streams:
  /// no overall bound, each read has its own timeout).
  final Duration? transferTimeout;

  /// Streams: bytes per chunk; 0: the daemon's http-chunk-size.
  final int chunkSize;

  /// Keep credential headers (Authorization, Cookie, X-Api-Key-like; the
  /// list is porterd's README's) on a redirect to another origin. By
  /// default porterd drops them there, as browsers and curl do.
  final bool keepCredentials;

  /// Bounds each connection attempt (curl's --connect-timeout); null:
  /// porterd's http-connect-timeout, which also caps it.
  final Duration? connectTimeout;

  const HttpOptions(
      {this.followRedirects = true,
      this.maxRedirects = 0,
      this.maxResponse = 0,
      this.transferTimeout,
      this.chunkSize = 0,
      this.keepCredentials = false,
      this.connectTimeout});

  /// Options used when none are given.
  static const HttpOptions defaults = HttpOptions();
}

/// One response header, as received (names keep the server's case).
final class HttpHeader {
  final String name;
  final String value;
  const HttpHeader(this.name, this.value);

  @override
  String toString() => '$name: $value';
}

/// Where the time of a request went (see `porter_http_timings`).
/// [nameLookup], [connect], [tls] and [firstByte] count from the start of
/// the last redirect hop; [total] spans all hops. [tls] is zero for plain
/// http. For a stream they are known only after its end.
final class HttpTimings {
  final Duration nameLookup;
  final Duration connect;
  final Duration tls;
  final Duration firstByte;
  final Duration total;

  const HttpTimings(
      {this.nameLookup = Duration.zero,
      this.connect = Duration.zero,
      this.tls = Duration.zero,
      this.firstByte = Duration.zero,
      this.total = Duration.zero});

  @override
  String toString() => 'dns ${nameLookup.inMicroseconds} us, '
      'connect ${connect.inMicroseconds} us, tls ${tls.inMicroseconds} us, '
      'first byte ${firstByte.inMicroseconds} us, '
      'total ${total.inMicroseconds} us';
}

/// An HTTP response. A plain Dart object: it owns no native memory and can
/// be sent between isolates.
///
/// Any status (404, 500, ...) is a response, not an exception: check
/// [status], or call [ensureSuccess].
final class PorterHttpResponse {
  /// The HTTP status code, e.g. 200.
  final int status;

  /// The status line as the server sent it, without CRLF
  /// ("HTTP/1.1 404 Not Found"); "" from a porterd too old to pass it on.
  final String statusLine;

  /// The reason phrase of [statusLine] ("Not Found"), or null when it has
  /// none (HTTP/2 sends none).
  String? get reasonPhrase {
    final m = RegExp(r'^\S+ \d{3} (.+)$').firstMatch(statusLine);
    return m?.group(1);
  }

  /// Every header in the order received (repeated names kept).
  final List<HttpHeader> headers;

  /// The body (empty for the head of a stream).
  final Uint8List body;

  /// The URL of the final response, after redirects.
  final String effectiveUrl;

  /// [effectiveUrl] as a [Uri].
  Uri get effectiveUri => Uri.parse(effectiveUrl);

  /// Redirects followed to reach it.
  final int redirects;

  /// Where the time went.
  final HttpTimings timings;

  const PorterHttpResponse(
      {required this.status,
      required this.headers,
      required this.body,
      required this.effectiveUrl,
      this.redirects = 0,
      this.timings = const HttpTimings(),
      this.statusLine = ''});

  /// The value of the first header named [name] (case-insensitive), or
  /// null.
  String? header(String name) {
    final n = name.toLowerCase();
    for (final h in headers) {
      if (h.name.toLowerCase() == n) return h.value;
    }
    return null;
  }

  /// Every value of header [name] (case-insensitive), in order.
  List<String> headerAll(String name) {
    final n = name.toLowerCase();
    return [
      for (final h in headers)
        if (h.name.toLowerCase() == n) h.value
    ];
  }

  /// The headers by lower-case name; repeated headers give several values.
  Map<String, List<String>> get headerMap {
    final m = <String, List<String>>{};
    for (final h in headers) {
      (m[h.name.toLowerCase()] ??= <String>[]).add(h.value);
    }
    return m;
  }

  /// Whether [status] is 2xx.
  bool get ok => status >= 200 && status < 300;

  /// The body decoded as UTF-8 (malformed sequences replaced).
  String get text => utf8.decode(body, allowMalformed: true);

  /// The body parsed as JSON.
  Object? get json => jsonDecode(text);

  /// Throws a [PorterHttpException] carrying [status] unless it is 2xx;
  /// returns this response otherwise.
  PorterHttpResponse ensureSuccess() {
    if (ok) return this;
    throw PorterHttpException(porter_error.PORTER_E_HTTP, 'PORTER_E_HTTP',
        'HTTP status $status from $effectiveUrl',
        status: status, url: effectiveUrl);
  }

  @override
  String toString() => 'PorterHttpResponse($status, ${body.length} bytes, '
      '$effectiveUrl)';
}

/// An HTTP call that got no usable response: [code] is one of the
/// PORTER_E_HTTP* codes (scheme or host not allowed, too many redirects,
/// body too large, connection or TLS failure, ...), or PORTER_E_HTTP with
/// [status] set when [PorterHttpResponse.ensureSuccess] refused a response.
///
/// [status] is the HTTP status the peer gave with the failure (for
/// example the 302 of a redirect that was refused), 0 when none.
class PorterHttpException extends PorterException {
  /// The HTTP status carried by the failure; 0 when the peer gave none.
  final int status;

  /// The URL of the request ("" when unknown).
  final String url;

  const PorterHttpException(int code, String name, String message,
      {this.status = 0, this.url = ''})
      : super(code, name, message);

  @override
  String toString() => 'PorterHttpException($name $code'
      '${status == 0 ? '' : ', HTTP $status'}'
      '${url.isEmpty ? '' : ', $url'}): $message';
}

/// Whether [code] is one of the HTTP block of codes (-30..-39).
bool isHttpCode(int code) => code <= -30 && code > -40;

/// The body of a request as bytes: null, a [String] (sent as UTF-8) or a
/// list of bytes.
Uint8List? httpBodyBytes(Object? body) {
  if (body == null) return null;
  if (body is Uint8List) return body;
  if (body is String) return utf8.encode(body);
  if (body is List<int>) return Uint8List.fromList(body);
  throw ArgumentError.value(
      body, 'body', 'use null, a String or a list of bytes');
}

/// Request headers as a list in order, from a map whose values are a
/// [String] or, for a header sent several times, an [Iterable] of them
/// (`{'Accept': ['text/html', 'application/json']}`). Checked before
/// anything is allocated or sent: a name is a non-empty token without ':'
/// or white space, and no value holds CR, LF or NUL (they would split one
/// header into two). Throws [ArgumentError].
List<HttpHeader> requestHeaders(Map<String, Object> headers) {
  final out = <HttpHeader>[];
  for (final e in headers.entries) {
    final n = e.key;
    if (n.isEmpty || n.contains(_badName)) {
      throw ArgumentError.value(n, 'headers', 'not a valid header name');
    }
    final v = e.value;
    final values = v is String
        ? [v]
        : v is Iterable<Object?>
            ? [for (final x in v) x is String ? x : _notString(n, x)]
            : [_notString(n, v)];
    for (final value in values) {
      if (value.contains(_badValue)) {
        throw ArgumentError.value(
            value, 'headers', 'a header value must not hold CR, LF or NUL');
      }
      out.add(HttpHeader(n, value));
    }
  }
  return out;
}

/// Checks [headers] as [requestHeaders] does.
void checkHttpHeaders(Map<String, Object> headers) => requestHeaders(headers);

final RegExp _badName = RegExp(r'[\s:\x00-\x1f\x7f]');
final RegExp _badValue = RegExp(r'[\r\n\x00]');

Never _notString(String name, Object? v) => throw ArgumentError.value(
    v, 'headers', 'the value of $name is a String or an Iterable of Strings');

/// The native arguments of one request (porter_http_request and
/// porter_batch_add_http), allocated together and freed by [free].
final class NativeHttpRequest {
  final Pointer<Char> method;
  final Pointer<Char> url;
  final Pointer<Pointer<Char>> headers;
  final int headerCount;
  final Pointer<Void> body;
  final int bodyLength;
  final Pointer<porter_http_options> options;
  final List<Pointer<NativeType>> _allocs;

  NativeHttpRequest._(this.method, this.url, this.headers, this.headerCount,
      this.body, this.bodyLength, this.options, this._allocs);

  /// Copies the arguments into native memory. Throws [ArgumentError] for
  /// invalid headers or a negative option before allocating anything.
  factory NativeHttpRequest(String method, String url,
      List<HttpHeader> headers, Uint8List? body, HttpOptions? options) {
    for (final h in headers) {
      if (h.name.isEmpty || h.name.contains(_badName) || h.value.contains(_badValue)) {
        throw ArgumentError.value(h, 'headers', 'not a valid header');
      }
    }
    final o = options ?? HttpOptions.defaults;
    if (o.maxRedirects < 0 || o.maxResponse < 0 || o.chunkSize < 0) {
      throw ArgumentError('HttpOptions values must not be negative');
    }
    final tt = o.transferTimeout;
    if (tt != null && tt.isNegative) {
      throw ArgumentError.value(tt, 'transferTimeout', 'must not be negative');
    }
    final ct = o.connectTimeout;
    if (ct != null && ct.isNegative) {
      throw ArgumentError.value(ct, 'connectTimeout', 'must not be negative');
    }
    checkNativeText(method, 'method');
    checkNativeText(url, 'url');
    final allocs = <Pointer<NativeType>>[];
    T keep<T extends Pointer<NativeType>>(T p) {
      allocs.add(p);
      return p;
    }

    try {
      final m = keep(nativeText(method, 'method'));
      final u = keep(nativeText(url, 'url'));
      Pointer<Pointer<Char>> h = nullptr;
      if (headers.isNotEmpty) {
        h = keep(calloc<Pointer<Char>>(headers.length));
        var i = 0;
        for (final e in headers) {
          // "Name:" is how porter.h sends a header with an empty value.
          final line = e.value.isEmpty ? '${e.name}:' : '${e.name}: ${e.value}';
          h[i++] = keep(nativeText(line, 'headers'));
        }
      }
      final len = body?.length ?? 0;
      Pointer<Void> b = nullptr;
      if (len != 0) {
        final buf = keep(calloc<Uint8>(len));
        buf.asTypedList(len).setAll(0, body!);
        b = buf.cast();
      }
      final opts = keep(calloc<porter_http_options>());
      opts.ref
        // What PORTER_HTTP_OPTIONS_INIT sets: the fields this code knows.
        // libporter refuses options without it (PORTER_E_INVAL).
        ..struct_size = sizeOf<porter_http_options>()
        ..keep_credentials = o.keepCredentials ? 1 : 0
        ..follow_redirects = o.followRedirects ? 1 : 0
        ..max_redirects = o.maxRedirects > 0xffffffff ? 0xffffffff : o.maxRedirects
        ..max_response = o.maxResponse
        ..transfer_timeout_ms = tt == null
            ? 0
            : (tt.inMilliseconds == 0
                ? 1
                : (tt.inMilliseconds > 0xffffffff
                    ? 0xffffffff
                    : tt.inMilliseconds))
        ..chunk_size = o.chunkSize > 0xffffffff ? 0xffffffff : o.chunkSize
        ..connect_timeout_ms = ct == null ? 0 : _ms32(ct);
      return NativeHttpRequest._(m, u, h, headers.length, b, len, opts, allocs);
    } catch (_) {
      for (final p in allocs) {
        calloc.free(p);
      }
      rethrow;
    }
  }

  /// porter_http_request with these arguments.
  int request(PorterBindings b, int callId, int timeoutMs,
          Pointer<Pointer<porter_http_response>> out) =>
      b.porter_http_request(method, url, headers, headerCount, body,
          bodyLength, options, callId, timeoutMs, out);

  /// porter_http_stream_open with these arguments.
  int openStream(PorterBindings b, int callId, int timeoutMs,
          Pointer<Pointer<porter_http_stream>> out) =>
      b.porter_http_stream_open(method, url, headers, headerCount, body,
          bodyLength, options, callId, timeoutMs, out);

  /// porter_http_upload_open with these arguments ([body] unused: the body
  /// follows) and [bodySize] (-1: unknown, sent chunked).
  int openUpload(PorterBindings b, int bodySize, int callId, int timeoutMs,
          Pointer<Pointer<porter_http_upload>> out) =>
      b.porter_http_upload_open(method, url, headers, headerCount, bodySize,
          options, callId, timeoutMs, out);

  /// porter_batch_add_http with these arguments: adds the request to
  /// [batch] with the member's own [timeoutMs].
  int addTo(PorterBindings b, Pointer<porter_batch> batch, int timeoutMs) =>
      b.porter_batch_add_http(batch, method, url, headers, headerCount, body,
          bodyLength, options, timeoutMs);

  /// Frees everything; calling it again does nothing.
  void free() {
    for (final p in _allocs) {
      calloc.free(p);
    }
    _allocs.clear();
  }
}

/// [d] in milliseconds for a uint32_t field: at least 1 (0 means the
/// default), at most 2^32-1.
int _ms32(Duration d) {
  final ms = d.inMilliseconds;
  return ms == 0 ? 1 : (ms > 0xffffffff ? 0xffffffff : ms);
}

/// Copies native response [r] into Dart (it stays owned by the caller).
PorterHttpResponse readHttpResponse(
    PorterBindings b, Pointer<porter_http_response> r) {
  final name = calloc<Pointer<Char>>();
  final value = calloc<Pointer<Char>>();
  final len = calloc<Size>();
  // An out struct carries its size (porter.h rule 9).
  final t = calloc<porter_http_timings>()
    ..ref.struct_size = sizeOf<porter_http_timings>();
  try {
    final n = b.porter_http_response_header_count(r);
    final headers = <HttpHeader>[
      for (var i = 0; i < n; i++)
        if (b.porter_http_response_header_at(r, i, name, value) == 0)
          HttpHeader(cString(name.value), cString(value.value))
    ];
    final bytes = copyNative(b.porter_http_response_body(r, len), len.value);
    b.porter_http_response_timings(r, t);
    final tm = t.ref;
    return PorterHttpResponse(
        status: b.porter_http_response_status(r),
        statusLine: cString(b.porter_http_response_status_line(r)),
        headers: List.unmodifiable(headers),
        body: bytes,
        effectiveUrl: cString(b.porter_http_response_effective_url(r)),
        redirects: b.porter_http_response_redirects(r),
        timings: HttpTimings(
            nameLookup: Duration(microseconds: tm.namelookup_us),
            connect: Duration(microseconds: tm.connect_us),
            tls: Duration(microseconds: tm.tls_us),
            firstByte: Duration(microseconds: tm.first_byte_us),
            total: Duration(microseconds: tm.total_us)));
  } finally {
    calloc.free(name);
    calloc.free(value);
    calloc.free(len);
    calloc.free(t);
  }
}

/// The exception for a failed HTTP call with [code], read right after the
/// call on the same thread (the thread's last error message and HTTP
/// status are only valid until its next call). HTTP codes give a
/// [PorterHttpException] with the status the peer gave; the others their
/// usual class, whatever status came with them: a transfer that timed
/// out or was cancelled after its head arrived carries that head's status
/// (200), and must still be the [PorterTimeoutException] or
/// [PorterCancelledException] the calls document (it was a
/// PorterHttpException with code PORTER_E_TIMEOUT, which no
/// `on PorterTimeoutException` caught).
PorterException httpError(PorterBindings b, int code, String url) {
  var message = cString(b.porter_last_error_message());
  final status = b.porter_http_last_status();
  final name = cString(b.porter_error_name(code));
  if (message.isEmpty) message = cString(b.porter_strerror(code));
  if (isHttpCode(code)) {
    return PorterHttpException(code, name, message, status: status, url: url);
  }
  return PorterException.fromCode(code, name, message);
}

/// The safety net for streams dropped without [HttpStream.close]: a
/// NativeFinalizer on porter_http_stream_free, which never waits. One per
/// isolate.
NativeFinalizer? _streamFinalizer;

/// A streamed HTTP response, owned by Dart: [response] is its head (status,
/// headers, effective URL; an empty body), [read] pulls the body chunk by
/// chunk, and [close] frees it (aborting a transfer not read to its end),
/// with a finalizer as the safety net.
///
/// Reads may come from any thread, one at a time: porterd forwards a read
/// to the worker loop that holds the stream, whichever connection it comes
/// on (tests/ffi/test_isolates.py checks this with several daemon
/// workers). [address] and [HttpStream.adopt] let another isolate read it.
final class HttpStream implements Finalizable {
  final PorterBindings _b;
  Pointer<porter_http_stream> _ptr;
  final bool _owned;

  /// The URL asked for.
  final String url;

  /// The response head (status, headers, effective URL; empty body).
  final PorterHttpResponse response;

  HttpStream._(this._b, this._ptr, this.url, this.response, this._owned) {
    if (_owned) {
      final f = _streamFinalizer ??=
          NativeFinalizer(_b.addresses.porter_http_stream_free.cast());
      f.attach(this, _ptr.cast(), detach: this);
    }
  }

  /// Takes ownership of native stream [p], just opened for [url], from
  /// this call on: when reading its head fails, [p] is freed before the
  /// exception propagates (the finalizer is not attached yet then), so
  /// the caller never frees it.
  factory HttpStream.own(
      PorterBindings b, Pointer<porter_http_stream> p, String url) {
    final PorterHttpResponse head;
    try {
      head = readHttpResponse(b, b.porter_http_stream_response(p));
    } catch (_) {
      b.porter_http_stream_free(p);
      rethrow;
    }
    return HttpStream._(b, p, url, head, true);
  }

  /// The native address, to hand the stream to another isolate.
  int get address => _ptr.address;

  /// Gives up ownership without closing (another isolate will).
  int release() {
    final a = _ptr.address;
    if (_owned && _ptr != nullptr) _streamFinalizer!.detach(this);
    _ptr = nullptr;
    return a;
  }

  /// Whether [close] or [release] was called.
  bool get isClosed => _ptr == nullptr;

  /// The next chunk of the body (a copy owned by Dart), or null at its
  /// end. Blocks this thread for at most [timeoutMs] (0: the default).
  /// Throws [PorterHttpException] when the transfer failed,
  /// [PorterTimeoutException] when nothing arrived in time.
  Uint8List? read(int timeoutMs, {int callId = 0}) {
    if (_ptr == nullptr) throw StateError('HTTP stream closed');
    return readHttpChunkAt(_b, _ptr.address, url, timeoutMs, callId: callId);
  }

  /// The head again, with the timings filled in once the body has ended
  /// (all zero before).
  PorterHttpResponse finalResponse() {
    if (_ptr == nullptr) return response;
    return httpHeadAt(_b, _ptr.address);
  }

  /// Frees the stream; one not read to its end is aborted in the daemon,
  /// waiting up to [timeoutMs] for porterd to confirm. Calling it again
  /// does nothing.
  void close([int timeoutMs = 1000]) {
    if (_ptr == nullptr) return;
    if (_owned) _streamFinalizer!.detach(this);
    _b.porter_http_stream_close(_ptr, timeoutMs);
    _ptr = nullptr;
  }

  /// Frees the stream without waiting (libporter's background thread
  /// aborts an unfinished transfer).
  void free() {
    if (_ptr == nullptr) return;
    if (_owned) _streamFinalizer!.detach(this);
    _b.porter_http_stream_free(_ptr);
    _ptr = nullptr;
  }
}

/// The next chunk of the native stream at [address] (a copy), or null at
/// its end; see [HttpStream.read]. Used by whichever pool worker pulls it.
Uint8List? readHttpChunkAt(
        PorterBindings b, int address, String url, int timeoutMs,
        {int callId = 0}) =>
    readNativeChunk(
        (data, len) => b.porter_http_stream_read(
            Pointer<porter_http_stream>.fromAddress(address),
            callId,
            timeoutMs,
            data,
            len),
        (rc) => httpError(b, rc, url));

/// The head of the native stream at [address], with its timings once the
/// body has ended.
PorterHttpResponse httpHeadAt(PorterBindings b, int address) => readHttpResponse(
    b, b.porter_http_stream_response(Pointer<porter_http_stream>.fromAddress(address)));
