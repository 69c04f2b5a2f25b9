// Porter's HTTP calls: whole responses and streamed bodies.
part of 'sync.dart';

/// The HTTP part of [Porter] (one concern per file; the class is one).
mixin _HttpCalls {
  PorterBindings get _b;

  /// Performs an HTTP request through porterd and returns the whole
  /// response (its body is limited to [HttpOptions.maxResponse], by default
  /// the daemon's http-max-response, 8 MiB; stream larger bodies with
  /// [httpEach] or [PorterPool.httpStream]).
  ///
  /// [method] is any token ("GET", "POST", "PUT", "DELETE", "HEAD", ...);
  /// [headers] are sent as given (an empty value sends the header empty);
  /// [body] is null, a String (sent as UTF-8) or bytes. Only http and https
  /// URLs are accepted, for the request and every redirect.
  ///
  /// Any HTTP status is a response: check [PorterHttpResponse.status] or call
  /// [PorterHttpResponse.ensureSuccess]. Blocks this thread for at most [timeout]
  /// (null: 5 s). Throws [PorterHttpException] when no response came
  /// (scheme or host not allowed, too many redirects, body too large,
  /// connection or TLS failure; [PorterHttpException.status] carries the
  /// status of a refused redirect), [PorterTimeoutException],
  /// [PorterCancelledException] (see [Porter.newCallId]), and
  /// [PorterConnectionLostException] for a method other than GET or HEAD
  /// whose outcome is unknown.
  PorterHttpResponse http(String method, Uri url,
          {Map<String, Object> headers = const {},
          Object? body,
          HttpOptions? options,
          Duration? timeout,
          int callId = 0}) =>
      httpWith(method, url, requestHeaders(headers),
          body: httpBodyBytes(body),
          options: options,
          timeout: timeout,
          callId: callId);

  /// [http] with the headers as a list in order (a name may repeat).
  PorterHttpResponse httpWith(String method, Uri url, List<HttpHeader> headers,
      {Uint8List? body,
      HttpOptions? options,
      Duration? timeout,
      int callId = 0}) {
    final r = _sendRequest(method, url, headers, body, options, timeout,
            (req, ms, out) => req.request(_b, callId, ms, out.cast()))
        .cast<porter_http_response>();
    try {
      return readHttpResponse(_b, r);
    } finally {
      _b.porter_http_response_free(r);
    }
  }

  /// GETs [url], following redirects (see [http]).
  PorterHttpResponse httpGet(Uri url,
          {Map<String, Object> headers = const {},
          HttpOptions? options,
          Duration? timeout,
          int callId = 0}) =>
      http('GET', url,
          headers: headers, options: options, timeout: timeout, callId: callId);

  /// POSTs [json] with `Content-Type: application/json`, following
  /// redirects (see [http]). A String is sent as it is; any other value is
  /// encoded with `jsonEncode` first.
  PorterHttpResponse httpPostJson(Uri url, Object? json,
          {Map<String, Object> headers = const {},
          HttpOptions? options,
          Duration? timeout,
          int callId = 0}) =>
      http('POST', url,
          headers: {'Content-Type': 'application/json', ...headers},
          body: json is String ? json : jsonEncode(json),
          options: options,
          timeout: timeout,
          callId: callId);

  /// Starts a streamed request (arguments as for [http]) and returns once
  /// the status and headers have arrived: read the body with
  /// [HttpStream.read] and always [HttpStream.close] it (in a `finally`).
  /// The body may be of any size; the daemon holds about one chunk
  /// ([HttpOptions.chunkSize]) and pauses the transfer while nobody reads.
  ///
  /// Any thread may read it, one read at a time (porterd forwards a read
  /// to the worker that holds the stream). For an async [Stream] use
  /// [PorterPool.httpStream].
  HttpStream httpStream(Uri url,
          {String method = 'GET',
          Map<String, Object> headers = const {},
          Object? body,
          HttpOptions? options,
          Duration? timeout,
          int callId = 0}) =>
      httpStreamWith(method, url, requestHeaders(headers),
          body: httpBodyBytes(body),
          options: options,
          timeout: timeout,
          callId: callId);

  /// [httpStream] with the headers as a list in order.
  HttpStream httpStreamWith(String method, Uri url, List<HttpHeader> headers,
      {Uint8List? body,
      HttpOptions? options,
      Duration? timeout,
      int callId = 0}) {
    final p = _sendRequest(method, url, headers, body, options, timeout,
            (req, ms, out) => req.openStream(_b, callId, ms, out.cast()))
        .cast<porter_http_stream>();
    // Owned from here: a failure reading the head frees it.
    return HttpStream.own(_b, p, '$url');
  }

  /// Starts a request whose body is written afterwards, piece by piece,
  /// for a body of any size that need not be in memory at once (a file, a
  /// pipe, a generated export): [HttpUpload.write] each piece, then
  /// [HttpUpload.finish] for the response as an [HttpStream]. [bodySize]
  /// is sent as Content-Length when known (the writes must add up to it);
  /// null sends the body chunked. [headers] must not frame the body
  /// (Content-Length, Transfer-Encoding, Expect: [ArgumentError]).
  ///
  /// Returns once porterd has accepted the request (not the server).
  /// Every write, the finish and the reads of the response carry
  /// [callId] unless given their own, so cancelling it stops whichever is
  /// in flight; [HttpOptions.transferTimeout] is one deadline over all of
  /// them. A redirect that wants the body again (307, 308) fails with
  /// [PorterHttpException]: the body was not kept. For a `Stream` of
  /// bytes, use [PorterPool.httpUpload] or [PorterHttpClient].
  HttpUpload httpUpload(String method, Uri url,
          {Map<String, Object> headers = const {},
          int? bodySize,
          HttpOptions? options,
          Duration? timeout,
          int callId = 0}) =>
      httpUploadWith(method, url, requestHeaders(headers),
          bodySize: bodySize,
          options: options,
          timeout: timeout,
          callId: callId);

  /// [httpUpload] with the headers as a list in order.
  HttpUpload httpUploadWith(String method, Uri url, List<HttpHeader> headers,
      {int? bodySize,
      HttpOptions? options,
      Duration? timeout,
      int callId = 0}) {
    checkUpload(method, headers, bodySize);
    final p = _sendRequest(
            method,
            url,
            headers,
            null,
            options,
            timeout,
            (req, ms, out) =>
                req.openUpload(_b, bodySize ?? -1, callId, ms, out.cast()))
        .cast<porter_http_upload>();
    return HttpUpload.own(_b, p, '$url');
  }

  /// Streams a response (arguments as for [httpStream]) and hands each
  /// chunk of the body to [onChunk] on this thread; return false to stop
  /// early (the transfer is aborted). The stream is closed before this
  /// returns, however it ends. Returns the response head, with timings
  /// when the body was read to its end.
  PorterHttpResponse httpEach(Uri url, bool Function(Uint8List chunk) onChunk,
      {String method = 'GET',
      Map<String, Object> headers = const {},
      Object? body,
      HttpOptions? options,
      Duration? timeout,
      int callId = 0}) {
    final ms = timeoutMs(timeout);
    final s = httpStream(url,
        method: method,
        headers: headers,
        body: body,
        options: options,
        timeout: timeout,
        callId: callId);
    // The timings are read before the close frees the stream.
    var head = s.response;
    drainChunks(() {
      final chunk = s.read(ms);
      if (chunk == null) head = s.finalResponse();
      return chunk;
    }, onChunk, s.close);
    return head;
  }

  /// Makes a native copy of a request (freed afterwards, checked before
  /// anything is allocated: see [NativeHttpRequest]) and runs [call] with
  /// it, the timeout in milliseconds and an out-parameter; returns what
  /// [call] stored there. A negative code throws the HTTP exception, read
  /// right after the call.
  Pointer<Void> _sendRequest(
      String method,
      Uri url,
      List<HttpHeader> headers,
      Uint8List? body,
      HttpOptions? options,
      Duration? timeout,
      int Function(NativeHttpRequest req, int ms, Pointer<Pointer<Void>> out)
          call) {
    final ms = timeoutMs(timeout);
    final req = NativeHttpRequest(method, '$url', headers, body, options);
    try {
      return nativeOut(
          (out) => call(req, ms, out), (rc) => httpError(_b, rc, '$url'));
    } finally {
      req.free();
    }
  }
}
