// A package:http client whose requests go through porterd, so code written
// against package:http (and the packages built on it) runs unchanged,
// without blocking the calling isolate (as cronet_http and cupertino_http
// plug platform stacks into the same interface).
import 'dart:typed_data';

import 'package:http/http.dart' as http;

import 'errors.dart';
import 'http.dart';
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
/// too, with the [PorterTimeoutException]'s message.
///
/// Limits, all porter.h's: the request body is collected before it is
/// sent (libporter takes a request body in one piece), up to
/// [maxRequestBody]; a header repeated in a request goes as package:http
/// gives it (joined with commas); repeated response headers are joined
/// with commas, as package:http's other clients do (use
/// [PorterPool.httpStream] to see each one). Framing headers
/// (Content-Length, Transfer-Encoding) are never forwarded: libcurl frames
/// the request itself.
final class PorterHttpClient extends http.BaseClient {
  /// The pool that runs the requests; [close] does not close it.
  final PorterPool pool;

  /// Bounds each request's wait for its head and each body chunk (null:
  /// the pool's [PorterTimeouts.http]).
  final Duration? timeout;

  /// Options for every request (redirects follow the request's
  /// `followRedirects` and `maxRedirects`).
  final HttpOptions options;

  /// The largest request body sent, in bytes.
  final int maxRequestBody;

  bool _closed = false;

  PorterHttpClient(this.pool,
      {this.timeout,
      this.options = HttpOptions.defaults,
      this.maxRequestBody = 16 << 20});

  @override
  Future<http.StreamedResponse> send(http.BaseRequest request) async {
    final url = request.url;
    if (_closed) {
      throw http.ClientException(
          'HTTP request failed. Client is already closed.', url);
    }
    final body = await _collect(request.finalize(), url);
    final headers = <HttpHeader>[
      for (final e in request.headers.entries)
        if (!_framing.contains(e.key.toLowerCase())) HttpHeader(e.key, e.value)
    ];
    final opts = HttpOptions(
        followRedirects: request.followRedirects,
        maxRedirects: request.followRedirects ? request.maxRedirects : 0,
        maxResponse: options.maxResponse,
        transferTimeout: options.transferTimeout,
        chunkSize: options.chunkSize,
        keepCredentials: options.keepCredentials);
    final PorterHttpStream s;
    try {
      s = await pool.httpStreamWith(request.method, url, headers,
          body: body.isEmpty ? null : body, options: opts, timeout: timeout);
    } on PorterException catch (e) {
      throw http.ClientException(e.message, url);
    } on ArgumentError catch (e) {
      throw http.ClientException('${e.message}', url);
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
        isRedirect: !request.followRedirects && _redirects.contains(status));
  }

  /// Collects a request body, refusing one over [maxRequestBody].
  Future<Uint8List> _collect(Stream<List<int>> body, Uri url) async {
    final b = BytesBuilder(copy: false);
    await for (final chunk in body) {
      if (b.length + chunk.length > maxRequestBody) {
        throw http.ClientException(
            'request body larger than $maxRequestBody bytes', url);
      }
      b.add(chunk);
    }
    return b.takeBytes();
  }

  /// Stops taking requests; [pool] stays open.
  @override
  void close() => _closed = true;

  static const Set<String> _framing = {'content-length', 'transfer-encoding'};
  static const Set<int> _redirects = {301, 302, 303, 307, 308};
}
