// PostgreSQL through porterd: sessions, results, cursors and their errors.
//
// Everything here that crosses isolates (sessions, results, rows) is a
// plain Dart object. Native results are copied out and freed before a call
// returns; a native cursor is owned by a [DbCursor] and freed by its
// close(), with a NativeFinalizer as the safety net.
import 'dart:convert';
import 'dart:ffi';
import 'dart:typed_data';

import 'package:ffi/ffi.dart';

import 'bindings.g.dart';
import 'errors.dart';

/// The type OID of `bytea`: values of this type come back as [Uint8List].
const int byteaOid = 17;

/// A database session: one server connection in porterd, with its
/// transaction and session state, named by an id. Any isolate (on any
/// thread) of this process may use it, so it can be sent to other isolates;
/// calls on one session run one at a time in the order porterd gets them.
final class DbSession {
  /// The daemon's id for the session (never 0).
  final int id;

  const DbSession(this.id);

  @override
  bool operator ==(Object other) => other is DbSession && other.id == id;

  @override
  int get hashCode => id.hashCode;

  @override
  String toString() => 'DbSession(0x${id.toUnsigned(64).toRadixString(16)})';
}

/// A query parameter with an explicit type. Plain values may be passed
/// directly instead: `null` is SQL NULL, a [String] is text (the server
/// infers its type), a [Uint8List] is binary `bytea`, and numbers and
/// booleans are sent as their text.
final class DbParam {
  /// null, a [String] (text format) or a [Uint8List] (binary format).
  final Object? value;

  /// The parameter's type OID; 0 lets the server infer it.
  final int typeOid;

  const DbParam(this.value, {this.typeOid = 0});

  /// A value in PostgreSQL's binary format for type [typeOid].
  const DbParam.binary(Uint8List this.value, {required this.typeOid});
}

/// One column of a result.
final class DbColumn {
  /// The column's name.
  final String name;

  /// Its type OID (e.g. 23 for int4, 25 for text, 17 for bytea).
  final int typeOid;

  const DbColumn(this.name, this.typeOid);

  @override
  String toString() => '$name($typeOid)';
}

/// The rows of one statement, with its command tag.
///
/// Values are in PostgreSQL's text format: a [String], `null` for SQL NULL,
/// and a [Uint8List] for `bytea` columns (decoded from the hex text form).
final class DbResultPart {
  /// The columns, in order.
  final List<DbColumn> columns;

  /// The rows; each has one value per column.
  final List<List<Object?>> rows;

  /// Rows affected by INSERT, UPDATE, DELETE, ... (0 otherwise).
  final int affectedRows;

  /// The command tag, e.g. `INSERT 0 1` ("" when none).
  final String commandTag;

  const DbResultPart(this.columns, this.rows, this.affectedRows, this.commandTag);
}

/// The outcome of one query call: one part per statement (a query without
/// parameters may hold several statements). The getters read the last
/// part, as libpq's PQexec returns the last result. A plain Dart object:
/// it owns no native memory and can be sent between isolates.
final class DbResult {
  /// Every statement's result, in order.
  final List<DbResultPart> parts;

  const DbResult(this.parts);

  DbResultPart? get _last => parts.isEmpty ? null : parts.last;

  /// The last statement's columns.
  List<DbColumn> get columns => _last?.columns ?? const [];

  /// The last statement's rows.
  List<List<Object?>> get rows => _last?.rows ?? const [];

  /// Rows affected by the last statement.
  int get affectedRows => _last?.affectedRows ?? 0;

  /// The last statement's command tag.
  String get commandTag => _last?.commandTag ?? '';

  /// The rows as maps from column name to value.
  List<Map<String, Object?>> get maps => [
        for (final row in rows)
          {for (var i = 0; i < columns.length; i++) columns[i].name: row[i]}
      ];
}

/// A failed query: [sqlstate] (e.g. `23505` for a unique violation),
/// [detail] and [hint] as the server sent them ("" when absent).
class PorterDbException extends PorterException {
  /// The five-character SQLSTATE; "" when the failure is not the server's.
  final String sqlstate;

  /// The server's DETAIL, or "".
  final String detail;

  /// The server's HINT, or "".
  final String hint;

  const PorterDbException(int code, String name, String message,
      {this.sqlstate = '', this.detail = '', this.hint = ''})
      : super(code, name, message);

  @override
  String toString() => 'PorterDbException($name $code'
      '${sqlstate.isEmpty ? '' : ' SQLSTATE $sqlstate'}): $message'
      '${detail.isEmpty ? '' : '\nDETAIL: $detail'}'
      '${hint.isEmpty ? '' : '\nHINT: $hint'}';
}

/// Native query parameters, allocated for one call and freed by [free].
final class NativeParams {
  final Pointer<porter_db_param> array;
  final int length;
  final List<Pointer<Uint8>> _buffers;

  NativeParams._(this.array, this.length, this._buffers);

  /// Copies [params] into native memory (see [DbParam] for the values
  /// accepted). Throws [ArgumentError] for other values, before allocating
  /// anything that would leak.
  factory NativeParams(List<Object?> params) {
    final values = [for (final p in params) _paramOf(p)];
    final array =
        params.isEmpty ? nullptr : calloc<porter_db_param>(params.length);
    final buffers = <Pointer<Uint8>>[];
    try {
      for (var i = 0; i < values.length; i++) {
        final (bytes, binary, oid) = values[i];
        final p = array[i];
        p.type_oid = oid;
        p.binary = binary ? 1 : 0;
        if (bytes == null) {
          p.value = nullptr;
          p.len = 0;
          continue;
        }
        final buf = calloc<Uint8>(bytes.isEmpty ? 1 : bytes.length);
        buffers.add(buf);
        buf.asTypedList(bytes.length).setAll(0, bytes);
        p.value = buf.cast();
        p.len = bytes.length;
      }
    } catch (_) {
      for (final b in buffers) {
        calloc.free(b);
      }
      if (array != nullptr) calloc.free(array);
      rethrow;
    }
    return NativeParams._(array, params.length, buffers);
  }

  void free() {
    for (final b in _buffers) {
      calloc.free(b);
    }
    _buffers.clear();
    if (array != nullptr) calloc.free(array);
  }
}

/// (bytes or null, binary, type OID) of one parameter.
(Uint8List?, bool, int) _paramOf(Object? v) {
  if (v is DbParam) {
    final inner = v.value;
    if (inner == null) return (null, false, v.typeOid);
    if (inner is Uint8List) return (inner, true, v.typeOid);
    if (inner is String) return (utf8.encode(inner), false, v.typeOid);
    throw ArgumentError.value(inner, 'params', 'DbParam holds a String or Uint8List');
  }
  if (v == null) return (null, false, 0);
  if (v is Uint8List) return (v, true, byteaOid);
  if (v is String) return (utf8.encode(v), false, 0);
  if (v is int || v is double || v is bool) {
    return (utf8.encode('$v'), false, 0);
  }
  throw ArgumentError.value(
      v, 'params', 'use null, String, Uint8List, num, bool or DbParam');
}

/// Copies the selected part of native result [r] into Dart.
DbResultPart readPart(PorterBindings b, Pointer<porter_db_result> r) {
  final nf = b.porter_db_nfields(r);
  final nt = b.porter_db_ntuples(r);
  final cols = <DbColumn>[
    for (var c = 0; c < nf; c++)
      DbColumn(_str(b.porter_db_fname(r, c)), b.porter_db_ftype(r, c))
  ];
  final rows = <List<Object?>>[];
  for (var i = 0; i < nt; i++) {
    final row = List<Object?>.filled(nf, null);
    for (var c = 0; c < nf; c++) {
      if (b.porter_db_getisnull(r, i, c) != 0) continue;
      final len = b.porter_db_getlength(r, i, c);
      final bytes = b.porter_db_getvalue(r, i, c).cast<Uint8>().asTypedList(len);
      row[c] = cols[c].typeOid == byteaOid
          ? _unhex(bytes)
          : utf8.decode(bytes, allowMalformed: true);
    }
    rows.add(row);
  }
  return DbResultPart(List.unmodifiable(cols), rows, b.porter_db_cmdtuples(r),
      _str(b.porter_db_cmdstatus(r)));
}

/// Every part of native result [r].
DbResult readResult(PorterBindings b, Pointer<porter_db_result> r) {
  final n = b.porter_db_nresults(r);
  final parts = <DbResultPart>[];
  for (var i = 0; i < n; i++) {
    b.porter_db_select(r, i);
    parts.add(readPart(b, r));
  }
  return DbResult(List.unmodifiable(parts));
}

/// The exception for a failed call whose native result [r] (may be null)
/// carries the server's error fields; [lastMessage] is the calling
/// thread's last error message, read right after the call. Database codes
/// (PORTER_E_DB...) give a [PorterDbException]; the others their usual
/// class ([PorterTimeoutException], [PorterCancelledException], ...).
PorterException dbError(PorterBindings b, int code, String name,
    Pointer<porter_db_result> r, String lastMessage) {
  final isDb = code <= porter_error.PORTER_E_DB && code > -30;
  if (r == nullptr || !isDb) {
    var msg = r == nullptr ? '' : _str(b.porter_db_message(r));
    if (msg.isEmpty) msg = lastMessage;
    return isDb
        ? PorterDbException(code, name, msg)
        : PorterException.fromCode(code, name, msg);
  }
  final msg = _str(b.porter_db_message(r));
  return PorterDbException(code, name, msg.isEmpty ? lastMessage : msg,
      sqlstate: _str(b.porter_db_sqlstate(r)),
      detail: _str(b.porter_db_detail(r)),
      hint: _str(b.porter_db_hint(r)));
}

String _str(Pointer<Char> p) =>
    p == nullptr ? '' : p.cast<Utf8>().toDartString();

/// `\x0a0b...` (bytea's hex output) to bytes; other text as its UTF-8.
Uint8List _unhex(Uint8List text) {
  if (text.length < 2 || text[0] != 0x5c || text[1] != 0x78) {
    return Uint8List.fromList(text);
  }
  final out = Uint8List((text.length - 2) ~/ 2);
  int nib(int c) => c <= 0x39 ? c - 0x30 : (c | 0x20) - 0x61 + 10;
  for (var i = 0; i < out.length; i++) {
    out[i] = nib(text[2 + 2 * i]) << 4 | nib(text[3 + 2 * i]);
  }
  return out;
}

/// One finalizer for cursors, per isolate.
NativeFinalizer? _cursorFinalizer;

/// A native streamed result, owned by Dart: chunks are pulled with [next]
/// (each call blocks the calling thread for at most its timeout) and the
/// cursor is freed by [close], or by a NativeFinalizer if the object
/// becomes unreachable first (a safety net: porterd then cancels the
/// query; the finalizer may block its thread briefly).
///
/// Any thread may pull the next chunk, one at a time: [address] lets a
/// cursor opened in one isolate be adopted by another with
/// [DbCursor.adopt] (the pool does this, so its chunks can be pulled by
/// whichever worker is free). Exactly one owner may close it.
final class DbCursor implements Finalizable {
  final PorterBindings _b;
  Pointer<porter_db_cursor> _ptr;
  final bool _owned;

  DbCursor._(this._b, this._ptr, this._owned) {
    if (_owned) {
      final f = _cursorFinalizer ??=
          NativeFinalizer(_b.addresses.porter_db_cursor_close.cast());
      f.attach(this, _ptr.cast(), detach: this);
    }
  }

  /// Takes ownership of a native cursor just opened.
  factory DbCursor.own(PorterBindings b, Pointer<porter_db_cursor> p) =>
      DbCursor._(b, p, true);

  /// Uses a cursor owned elsewhere (by [address]); [close] then frees it
  /// and the owner must not. No finalizer is attached here.
  factory DbCursor.adopt(PorterBindings b, int address) =>
      DbCursor._(b, Pointer<porter_db_cursor>.fromAddress(address), false);

  /// The native address, to hand the cursor to another isolate.
  int get address => _ptr.address;

  /// Gives up ownership without closing (another isolate will): the
  /// finalizer is detached and [address] is returned.
  int release() {
    final a = _ptr.address;
    if (_owned && _ptr != nullptr) _cursorFinalizer!.detach(this);
    _ptr = nullptr;
    return a;
  }

  /// The next chunk of rows, or null after the last one. Throws
  /// [PorterDbException] when the query failed on the server (the error
  /// may arrive with any chunk), [PorterTimeoutException], ...
  DbResultPart? next(int timeoutMs) {
    if (_ptr == nullptr) throw StateError('cursor closed');
    final out = calloc<Pointer<porter_db_result>>();
    try {
      final rc = _b.porter_db_cursor_next(_ptr, out, timeoutMs);
      final last = _str(_b.porter_last_error_message());
      final r = out.value;
      try {
        if (rc < 0) {
          throw dbError(_b, rc, _str(_b.porter_error_name(rc)), r, last);
        }
        if (rc == 0) return null;
        return readPart(_b, r);
      } finally {
        _b.porter_db_result_free(r);
      }
    } finally {
      calloc.free(out);
    }
  }

  /// Closes the cursor (porterd cancels a query not read to its end).
  /// Calling it again does nothing.
  void close() {
    if (_ptr == nullptr) return;
    if (_owned) _cursorFinalizer!.detach(this);
    _b.porter_db_cursor_close(_ptr);
    _ptr = nullptr;
  }
}
