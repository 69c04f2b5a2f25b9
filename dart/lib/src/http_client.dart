// A package:http client whose requests go through porterd, so code written
// against package:http (and the packages built on it) runs unchanged,
// without blocking the calling isolate (as cronet_http and cupertino_http
// plug platform stacks into the same interface).
import 'dart:async';
import 'dart:typed_data';

import 'package:http/http.dart' as http;

import 'errors.dart';
import 'http.dart';
import 'http_upload.dart';
import 'pool.dart';

/// A `package:http` [http.Client] that sends every request through porterd
/// on [pool]'s workers:
///
/// ```dart
/// final client = PorterHttpClient(pool);
/// final r = await client.get(Uri.https('example.org', '/notes'));
/// print('${r.statusCode}: ${r.body}');
/// client.close(); // the pool stays open: it is yours
/// ```
///
/// The response body is streamed (a [http.StreamedResponse] whose stream
/// pulls chunks from porterd as it is read). Failures to get a response
/// (connection, TLS, a host the daemon does not allow) are
/// [http.ClientException]s, as package:http promises; a timeout is one
/// too, with the [PorterTimeoutException]'s message, and so is a request
/// made once [pool] is closed.
///
/// Request bodies stream: a body is read as porterd takes it (a
/// `StreamedRequest` of any size, a `MultipartRequest` of large files), so
/// a slow server slows its producer down and no more than about 1 MiB of
/// it is held here. A body shorter than [inlineBody] goes with the request
/// in one message. A 307 or 308 redirect of a streamed body fails (the
/// body was not kept), as it does in curl.
///
/// Limits, all porter.h's: a header repeated in a request goes as
/// package:http gives it (joined with commas); repeated response headers
/// are joined with commas, as package:http's other clients do (use
/// [PorterPool.httpStream] to see each one). Framing headers
/// (Content-Length, Transfer-Encoding, Expect) are never forwarded:
/// libcurl frames the request itself, from the request's `contentLength`
/// when it has one.
final class PorterHttpClient extends http.BaseClient {
  /// The pool that runs the requests; [close] does not close it.
  final PorterPool pool;

  /// Bounds each request's wait for its head and each body chunk (null:
  /// the pool's [PorterTimeouts.http]).
  final Duration? timeout;

  /// Options for every request (redirects follow the request's
  /// `followRedirects` and `maxRedirects`).
  final HttpOptions options;

  /// Bodies shorter than this many bytes go with the request in one
  /// message; longer ones, and bodies still arriving, are streamed.
  final int inlineBody;

  bool _closed = false;

  PorterHttpClient(this.pool,
      {this.timeout,
      this.options = HttpOptions.defaults,
      this.inlineBody = 64 << 10});

  @override
  Future<http.StreamedResponse> send(http.BaseRequest request) async {
    final url = request.url;
    if (_closed) {
      throw http.ClientException(
          'HTTP request failed. Client is already closed.', url);
    }
    final headers = <HttpHeader>[
      for (final e in request.headers.entries)
        if (!uploadFramingHeaders.contains(e.key.toLowerCase()))
          HttpHeader(e.key, e.value)
    ];
    // package:http's maxRedirects of 0 (or less) with followRedirects
    // means "follow none, and a redirect is an error", as IOClient does;
    // porter.h's max_redirects of 0 means the daemon's limit, so such a
    // request does not follow and its redirect is turned into that error.
    final noneAllowed = request.followRedirects && request.maxRedirects <= 0;
    final follow = request.followRedirects && !noneAllowed;
    final opts = HttpOptions(
        followRedirects: follow,
        maxRedirects: follow ? request.maxRedirects : 0,
        maxResponse: options.maxResponse,
        transferTimeout: options.transferTimeout,
        chunkSize: options.chunkSize,
        keepCredentials: options.keepCredentials,
        connectTimeout: options.connectTimeout);
    // The first bytes decide: a body that ends within inlineBody goes in
    // one message, a longer one is streamed from where this stopped.
    final body = StreamIterator(request.finalize());
    final head = BytesBuilder(copy: false);
    var ended = false;
    final PorterHttpStream s;
    try {
      while (head.length < inlineBody) {
        if (!await body.moveNext()) {
          ended = true;
          break;
        }
        head.add(body.current);
      }
      if (ended) {
        final bytes = head.takeBytes();
        s = await pool.httpStreamWith(request.method, url, headers,
            body: bytes.isEmpty ? null : bytes, options: opts, timeout: timeout);
      } else {
        s = await pool.httpUploadWith(
            request.method, url, headers, _rest(head.takeBytes(), body),
            bodySize: request.contentLength, options: opts, timeout: timeout);
      }
    } on PorterException catch (e) {
      throw http.ClientException(e.message, url);
    } on ArgumentError catch (e) {
      throw http.ClientException('${e.message}', url);
    } on StateError catch (e) {
      // The pool was closed (an app shutting down): the request failed,
      // and package:http code catches that as a ClientException, as
      // IOClient's after its close.
      if (!pool.isClosed) rethrow;
      throw http.ClientException('HTTP request failed. ${e.message}.', url);
    } finally {
      // Done with it whichever way this went (read to its end, streamed
      // and cancelled by the upload, or never handed over because the
      // request failed first); cancelling it again does nothing.
      await body.cancel();
    }
    if (noneAllowed && _redirects.contains(s.status)) {
      s.cancel();
      throw http.ClientException('Redirect limit exceeded', url);
    }
    final joined = <String, String>{};
    for (final h in s.response.headers) {
      final k = h.name.toLowerCase();
      final prev = joined[k];
      joined[k] = prev == null ? h.value : '$prev,${h.value}';
    }
    // A body libcurl decoded (Content-Encoding) no longer has the length
    // the server announced.
    final length = joined.containsKey('content-encoding')
        ? null
        : int.tryParse(joined['content-length'] ?? '');
    final status = s.status;
    return http.StreamedResponse(
        s.body.handleError((Object e) => throw http.ClientException(
            e is PorterException ? e.message : '$e', url)),
        status,
        contentLength: length,
        request: request,
        headers: joined,
        reasonPhrase: s.response.reasonPhrase,
        isRedirect: !request.followRedirects && _redirects.contains(status));
  }

  /// [first], then what is left of [body]; cancelling the result cancels
  /// [body].
  static Stream<List<int>> _rest(
      Uint8List first, StreamIterator<List<int>> body) async* {
    try {
      yield first;
      while (await body.moveNext()) {
        yield body.current;
      }
    } finally {
      await body.cancel();
    }
  }

  /// Stops taking requests; [pool] stays open.
  @override
  void close() => _closed = true;

  static const Set<int> _redirects = {301, 302, 303, 307, 308};
}
