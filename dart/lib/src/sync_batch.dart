// Porter.batch's helpers: building the native batch from its Dart
// description and reading every member's result back.
part of 'sync.dart';

extension _Batch on Porter {
  /// Adds [member] to native builder [b]; returns its index or a negative
  /// code. Native copies of the arguments are freed before it returns (the
  /// builder copies them).
  int _addMember(Pointer<porter_batch> b, BatchMember member) =>
      switch (member) {
        BatchPing m => _addPing(b, m),
        BatchQuery m => _addQuery(b, m),
        BatchFileRead m => _withPath(
            m.root,
            m.path,
            (r, p) => _b.porter_batch_add_file_read(
                b, r, p, m.offset, m.length ?? 0, timeoutMs(m.timeout))),
        BatchHttp m => _addHttp(b, m),
      };

  int _addPing(Pointer<porter_batch> b, BatchPing m) {
    final len = m.payload?.length ?? 0;
    final buf = len == 0 ? nullptr : calloc<Uint8>(len);
    try {
      if (len != 0) buf.asTypedList(len).setAll(0, m.payload!);
      return _b.porter_batch_add_ping(
          b, buf.cast(), len, _delayMs(m.delay), timeoutMs(m.timeout));
    } finally {
      if (len != 0) calloc.free(buf);
    }
  }

  int _addQuery(Pointer<porter_batch> b, BatchQuery m) => _withQuery(
      m.sql,
      m.session,
      m.conninfo,
      m.params,
      (ci, sql, np) => _b.porter_batch_add_db_query(b, m.session?.id ?? 0, ci,
          sql, np.array, np.length, timeoutMs(m.timeout)));

  int _addHttp(Pointer<porter_batch> b, BatchHttp m) {
    final req =
        NativeHttpRequest(m.method, '${m.url}', m.headers, m.body, m.options);
    try {
      return req.addTo(_b, b, timeoutMs(m.timeout));
    } finally {
      req.free();
    }
  }

  PorterBatchResult _readBatch(
      Pointer<porter_batch_result> r, List<BatchMember> kinds) {
    final n = _b.porter_batch_result_count(r);
    final data = calloc<Pointer<Void>>();
    final len = calloc<Size>();
    final size = calloc<Uint64>();
    final dbOut = calloc<Pointer<porter_db_result>>();
    final httpOut = calloc<Pointer<porter_http_response>>();
    try {
      final members = <BatchMemberResult>[];
      for (var i = 0; i < n; i++) {
        final code = _b.porter_batch_result_status(r, i);
        final name = errorName(code);
        final message = cString(_b.porter_batch_result_message(r, i));
        final kind = i < kinds.length ? kinds[i] : null;
        Uint8List? payload;
        DbResult? dbResult;
        Uint8List? fileData;
        int? fileSize;
        PorterHttpResponse? response;
        PorterException? exception;
        switch (kind) {
          case BatchPing _:
            if (code == 0 &&
                _b.porter_batch_result_ping(r, i, data, len) == 0) {
              payload = copyNative(data.value, len.value);
            }
          case BatchQuery _:
            // A query that got an answer has a result, success or not: a
            // failed one carries the server's SQLSTATE, DETAIL and HINT.
            if (_b.porter_batch_result_db(r, i, dbOut) == 0) {
              final dbRes = dbOut.value;
              try {
                if (code == 0) {
                  dbResult = readResult(_b, dbRes);
                } else {
                  exception = dbError(_b, code, name, dbRes, message);
                }
              } finally {
                _b.porter_db_result_free(dbRes);
              }
            }
          case BatchFileRead f:
            if (code == 0 &&
                _b.porter_batch_result_file_read(r, i, data, len, size) == 0) {
              fileData = copyNative(data.value, len.value);
              fileSize = size.value;
            } else if (code != 0) {
              final fk = fileErrorKind(code);
              if (fk != null) {
                exception =
                    PorterFileException(code, name, message, fk, f.path);
              }
            }
          case BatchHttp h:
            if (code == 0 && _b.porter_batch_result_http(r, i, httpOut) == 0) {
              final httpRes = httpOut.value;
              try {
                response = readHttpResponse(_b, httpRes);
              } finally {
                _b.porter_http_response_free(httpRes);
              }
            } else if (code != 0 && isHttpCode(code)) {
              exception =
                  PorterHttpException(code, name, message, url: '${h.url}');
            }
          case null:
            break;
        }
        members.add(BatchMemberResult(code, name, message, payload,
            db: dbResult,
            data: fileData,
            fileSize: fileSize,
            http: response,
            exception: exception));
      }
      final w = _b.porter_batch_result_winner(r);
      return PorterBatchResult(List.unmodifiable(members), w < 0 ? null : w);
    } finally {
      calloc.free(data);
      calloc.free(len);
      calloc.free(size);
      calloc.free(dbOut);
      calloc.free(httpOut);
    }
  }
}
