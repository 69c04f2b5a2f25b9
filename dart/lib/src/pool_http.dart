// The pool's HTTP calls: whole responses and streamed bodies.
part of 'pool.dart';

/// The HTTP part of [PorterPool] (one concern per file; the class is
/// one).
mixin _PoolHttp on _PoolCore {
  /// Performs an HTTP request on a worker; see [Porter.http]. Headers are
  /// a [String] per name, or an [Iterable] of them for a name sent
  /// several times. Any HTTP status is a response
  /// ([PorterHttpResponse.ensureSuccess] turns a non-2xx one into a
  /// [PorterHttpException]); failures to get one are
  /// [PorterHttpException]s. [cancel] stops the transfer in the daemon.
  /// For `package:http` code, see [PorterHttpClient].
  Future<PorterHttpResponse> http(String method, Uri url,
      {Map<String, Object> headers = const {},
      Object? body,
      Duration? timeout,
      HttpOptions? options,
      PorterCancelToken? cancel}) {
    return _checkedRequest(
        headers,
        body,
        (h, b) => httpWith(method, url, h,
            body: b, options: options, timeout: timeout, cancel: cancel));
  }

  /// Runs [send] with [headers] and [body] checked and converted on this
  /// isolate ([requestHeaders], [httpBodyBytes]): a bad one fails the
  /// returned future with an [ArgumentError] and reaches no worker.
  static Future<R> _checkedRequest<R>(Map<String, Object> headers,
      Object? body, Future<R> Function(List<HttpHeader>, Uint8List?) send) {
    try {
      return send(requestHeaders(headers), httpBodyBytes(body));
    } catch (e, st) {
      return Future.error(e, st);
    }
  }

  /// [http] with the headers as a list in order (a name may repeat).
  Future<PorterHttpResponse> httpWith(
          String method, Uri url, List<HttpHeader> headers,
          {Uint8List? body,
          HttpOptions? options,
          Duration? timeout,
          PorterCancelToken? cancel}) =>
      _submit(_Op.http, timeout, cancel,
              args: _HttpArgs(
                  method, url, List.unmodifiable(headers), body, options))
          .then((v) => v as PorterHttpResponse);

  /// GETs [url] on a worker, following redirects; see [Porter.httpGet].
  Future<PorterHttpResponse> httpGet(Uri url,
          {Map<String, Object> headers = const {},
          HttpOptions? options,
          Duration? timeout,
          PorterCancelToken? cancel}) =>
      http('GET', url,
          headers: headers, options: options, timeout: timeout, cancel: cancel);

  /// POSTs [json] (a String as it is, anything else through `jsonEncode`)
  /// with `Content-Type: application/json` on a worker; see
  /// [Porter.httpPostJson].
  Future<PorterHttpResponse> httpPostJson(Uri url, Object? json,
      {Map<String, Object> headers = const {},
      HttpOptions? options,
      Duration? timeout,
      PorterCancelToken? cancel}) {
    final String text;
    try {
      text = json is String ? json : jsonEncode(json);
    } catch (e, st) {
      return Future.error(e, st);
    }
    return http('POST', url,
        headers: {'Content-Type': 'application/json', ...headers},
        body: text,
        options: options,
        timeout: timeout,
        cancel: cancel);
  }

  /// A streamed request: completes with the response head once the status
  /// and headers have arrived; its [PorterHttpStream.body] is a
  /// single-subscription [Stream] of the body's chunks, of any total size.
  ///
  /// Each chunk is pulled from porterd by whichever worker is free, only
  /// while the listener wants more: a paused or slow listener pauses the
  /// transfer, all the way to the HTTP peer, and holds no worker (porterd
  /// aborts a stream nobody reads for its http-stream-idle time, 10 s by
  /// default). Each pull is bounded by [timeout], the whole stream by
  /// [HttpOptions.transferTimeout]. Cancelling the
  /// subscription, or [PorterHttpStream.cancel], aborts the transfer;
  /// [cancel] also ends the body with a [PorterCancelledException].
  Future<PorterHttpStream> httpStream(Uri url,
      {String method = 'GET',
      Map<String, Object> headers = const {},
      Object? body,
      HttpOptions? options,
      Duration? timeout,
      PorterCancelToken? cancel}) {
    return _checkedRequest(
        headers,
        body,
        (h, b) => httpStreamWith(method, url, h,
            body: b, options: options, timeout: timeout, cancel: cancel));
  }

  /// [httpStream] with the headers as a list in order.
  Future<PorterHttpStream> httpStreamWith(
      String method, Uri url, List<HttpHeader> headers,
      {Uint8List? body,
      HttpOptions? options,
      Duration? timeout,
      PorterCancelToken? cancel}) =>
      _httpStreamOf(
          _Op.httpOpen,
          _HttpArgs(method, url, List.unmodifiable(headers), body, options),
          url,
          timeout,
          cancel);

  /// Sends a request whose body is [body], a stream of any length, and
  /// completes with the response as [httpStream] does, once the body has
  /// been sent and the head has arrived.
  ///
  /// The body is pulled as porterd takes it: at most about 1 MiB of it is
  /// buffered here (pieces that arrive while one is being written go out
  /// together with the next write) and porterd holds one piece, so a slow
  /// server slows the stream down instead of filling memory. [bodySize],
  /// when known, is sent as Content-Length (the stream must have exactly
  /// that many bytes); null sends the body chunked. A server that answers
  /// before taking the whole body (a 413, a redirect) gets no more of it:
  /// the subscription to [body] is cancelled and its answer is returned.
  ///
  /// [timeout] bounds each step (the open, each write, the wait for the
  /// head, each read of the response); [HttpOptions.transferTimeout] bounds
  /// the whole transfer. [cancel] stops whichever step is in flight in
  /// porterd. An error of [body] aborts the transfer and fails the future
  /// with it. [headers] must not frame the body (Content-Length,
  /// Transfer-Encoding, Expect: [ArgumentError]). A redirect that wants the
  /// body again (307, 308) fails with [PorterHttpException]: the body was
  /// not kept. See also [PorterHttpClient], which streams the bodies of
  /// package:http requests this way.
  Future<PorterHttpStream> httpUpload(
      String method, Uri url, Stream<List<int>> body,
      {Map<String, Object> headers = const {},
      int? bodySize,
      HttpOptions? options,
      Duration? timeout,
      PorterCancelToken? cancel}) {
    try {
      return httpUploadWith(method, url, requestHeaders(headers), body,
          bodySize: bodySize, options: options, timeout: timeout, cancel: cancel);
    } catch (e, st) {
      return Future.error(e, st);
    }
  }

  /// [httpUpload] with the headers as a list in order.
  Future<PorterHttpStream> httpUploadWith(
      String method, Uri url, List<HttpHeader> headers, Stream<List<int>> body,
      {int? bodySize,
      HttpOptions? options,
      Duration? timeout,
      PorterCancelToken? cancel}) async {
    checkUpload(method, headers, bodySize);
    final up = await _Upload.open(
        _pool,
        _HttpArgs(method, url, List.unmodifiable(headers), null, options,
            bodySize: bodySize ?? -1),
        timeout,
        cancel);
    await up.send(body);
    // The finish opens the response stream; the upload handle is freed
    // once the finish ran (it then sends nothing; a finish that failed is
    // aborted by the free).
    return _httpStreamOf(_Op.uploadFinish, _HandleArgs(up.address, '$url'),
        url, timeout, cancel,
        cancelId: up.callId, onOpenSettled: up.free);
  }

  /// A pool HTTP stream whose open is [openOp] (a request, or the finish
  /// of an upload) with [openArgs]; see [httpStream]. [cancelId]: the id
  /// that stops its steps in porterd when it is not the open's own.
  Future<PorterHttpStream> _httpStreamOf(
      _Op openOp, Object openArgs, Uri url, Duration? timeout,
      PorterCancelToken? cancel,
      {int? cancelId, void Function()? onOpenSettled}) {
    final head = Completer<PorterHttpStream>();
    final done = Completer<PorterHttpResponse>();
    PorterHttpResponse? first;
    // Nobody need listen to done: an error there is also the body's.
    done.future.ignore();
    late final _HandleStream<Uint8List> h;
    h = _HandleStream<Uint8List>(
        _pool, openOp, openArgs, _Op.httpRead, '$url', timeout, cancel,
        cancelId: cancelId,
        onOpenSettled: onOpenSettled,
        addressOf: (v) => (v as _HttpOpened).address,
        onOpen: (v) {
          final f = first = (v as _HttpOpened).head;
          head.complete(PorterHttpStream._(f, h.stream(), done.future, h.cancel));
        },
        chunkOf: (v) {
          if (v is _HttpEnd) {
            if (!done.isCompleted) done.complete(v.head);
            return null;
          }
          return (v as TransferableTypedData).materialize().asUint8List();
        },
        onEnd: (e, st) {
          // The end of the body completed done with the timed head
          // already; a cancel completes it with the head as it came.
          final f = first;
          if (!done.isCompleted) {
            if (e != null) {
              done.completeError(e, st);
            } else if (f != null) {
              done.complete(f);
            }
          }
          if (!head.isCompleted) {
            head.completeError(
                e ?? StateError('the HTTP stream ended before its head'), st);
          }
        });
    h.open();
    return head.future;
  }
}

/// A streamed HTTP response from [PorterPool.httpStream].
final class PorterHttpStream {
  /// The head: status, headers, effective URL (an empty body; timings all
  /// zero, see [done]).
  final PorterHttpResponse response;

  /// The body, chunk by chunk (single subscription). It ends with an error
  /// when the transfer fails ([PorterHttpException]), times out or is
  /// cancelled.
  final Stream<Uint8List> body;

  /// Completes with the head again, with its timings, once the body has
  /// been read to its end; with the head as it came (no timings) when the
  /// body was cancelled first; with the body's error when it failed.
  final Future<PorterHttpResponse> done;

  final void Function() _cancel;

  PorterHttpStream._(this.response, this.body, this.done, this._cancel);

  /// The HTTP status code.
  int get status => response.status;

  /// Aborts the transfer without reading the rest, whether or not the body
  /// is listened to; the body then ends (without an error).
  void cancel() => _cancel();
}
