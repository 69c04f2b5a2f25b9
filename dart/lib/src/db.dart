// PostgreSQL through porterd: sessions, results, rows, cursors and their
// errors.
//
// Everything here that crosses isolates (sessions, results, rows) is a
// plain Dart object. Native results are copied out and freed before a call
// returns; a native cursor is owned by a [DbCursor] and freed by its
// close(), with a NativeFinalizer on its non-waiting free as the safety
// net.
import 'dart:ffi';
import 'dart:typed_data';

import 'package:ffi/ffi.dart';

import 'bindings.g.dart';
import 'codec.dart';
import 'db_diag.dart';
import 'native.dart' show cString;

/// The type OID of `bytea` ([PgType.bytea]).
const int byteaOid = PgType.bytea;

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

  /// The id as porterd names it, in hex: the uint64 porter.h returns,
  /// which Dart reads as a negative int when its top bit is set (porterd
  /// makes ids of a worker number and 48 random bits today, so none has
  /// it, but the wire type is uint64 and nothing promises more).
  /// `toUnsigned(64)` cannot help there: a Dart int has 64 bits, so it
  /// returns the same negative number.
  @override
  String toString() => 'DbSession(0x${hex64(id)})';
}

/// [v] as the unsigned 64-bit number C sees, in hex (no sign): the value
/// of a uint64_t that Dart holds as a negative int when its top bit is
/// set.
String hex64(int v) => v >= 0
    ? v.toRadixString(16)
    : (v >>> 4).toRadixString(16) + (v & 0xf).toRadixString(16);

/// One column of a result.
final class DbColumn {
  /// The column's name.
  final String name;

  /// Its type OID (e.g. [PgType.int4], [PgType.text], [PgType.bytea]).
  final int typeOid;

  const DbColumn(this.name, this.typeOid);

  @override
  bool operator ==(Object other) =>
      other is DbColumn && other.name == name && other.typeOid == typeOid;

  @override
  int get hashCode => Object.hash(name, typeOid);

  @override
  String toString() => '$name($typeOid)';
}

/// The columns of one result, with a lookup by name built once and shared
/// by all its rows.
final class DbColumns {
  /// The columns, in order.
  final List<DbColumn> list;

  /// Column index by name; the first column wins when names repeat.
  final Map<String, int> byName;

  DbColumns(List<DbColumn> columns)
      : list = List.unmodifiable(columns),
        byName = Map.unmodifiable({
          for (var i = columns.length - 1; i >= 0; i--) columns[i].name: i
        });
}

/// One row of a result: values decoded by their column's type (see the
/// README's "Typed values"), read by index or by column name.
///
/// ```dart
/// final row = r.rows.first;
/// final id = row.getInt('id');          // or row[0] as int
/// final when = row.getDateTime('created');
/// final tags = row.get<List<Object?>>('tags');
/// final note = row.getOrNull<String>('note'); // null for SQL NULL
/// ```
///
/// A plain Dart object: it can be sent to other isolates.
final class Row {
  final DbColumns _columns;

  /// The values in column order; SQL NULL is null.
  final List<Object?> values;

  Row(this._columns, List<Object?> values) : values = List.unmodifiable(values);

  /// The result's columns.
  List<DbColumn> get columns => _columns.list;

  /// The number of values.
  int get length => values.length;

  /// The value of column [key]: an `int` index or a `String` name.
  /// Throws [RangeError] or [ArgumentError] for no such column.
  Object? operator [](Object key) => values[indexOf(key)];

  /// The index of column [key] (an index is checked and returned as is).
  int indexOf(Object key) {
    if (key is int) {
      RangeError.checkValidIndex(key, values, 'column');
      return key;
    }
    if (key is String) {
      final i = _columns.byName[key];
      if (i != null) return i;
      throw ArgumentError.value(key, 'column',
          'no such column (columns: ${columns.map((c) => c.name).join(', ')})');
    }
    throw ArgumentError.value(key, 'column', 'an int index or a String name');
  }

  /// The value of column [key] as a [T]; throws a [StateError] naming the
  /// column and the value's type when it is not one (SQL NULL is a `T`
  /// only when [T] is nullable: use [getOrNull]).
  T get<T>(Object key) {
    final v = this[key];
    if (v is T) return v;
    final c = columns[indexOf(key)];
    throw StateError('column ${c.name} (type OID ${c.typeOid}) holds '
        '${v == null ? 'NULL' : v.runtimeType}, not $T');
  }

  /// The value of column [key] as a [T], or null for SQL NULL.
  T? getOrNull<T extends Object>(Object key) => get<T?>(key);

  int getInt(Object key) => get<int>(key);
  double getDouble(Object key) => get<double>(key);
  bool getBool(Object key) => get<bool>(key);
  String getString(Object key) => get<String>(key);
  DateTime getDateTime(Object key) => get<DateTime>(key);
  Uint8List getBytes(Object key) => get<Uint8List>(key);
  PgInterval getInterval(Object key) => get<PgInterval>(key);

  /// The row as a map from column name to value (the first column wins
  /// when names repeat).
  Map<String, Object?> toMap() =>
      {for (final e in _columns.byName.entries) e.key: values[e.value]};

  @override
  bool operator ==(Object other) =>
      other is Row && _listEquals(other.values, values);

  @override
  int get hashCode => Object.hashAll(values);

  @override
  String toString() => 'Row$values';
}

bool _listEquals(List<Object?> a, List<Object?> b) {
  if (a.length != b.length) return false;
  for (var i = 0; i < a.length; i++) {
    final x = a[i], y = b[i];
    if (x is Uint8List && y is Uint8List) {
      if (!_listEquals(x, y)) return false;
    } else if (x is List<Object?> && y is List<Object?>) {
      if (!_listEquals(x, y)) return false;
    } else if (x != y) {
      return false;
    }
  }
  return true;
}

/// The rows of one statement, with its command tag.
final class DbResultPart {
  final DbColumns _columns;

  /// The rows, values decoded by type (see [Row]).
  final List<Row> rows;

  /// Rows affected by INSERT, UPDATE, DELETE, ... (0 otherwise).
  final int affectedRows;

  /// The command tag, e.g. `INSERT 0 1` ("" when none).
  final String commandTag;

  /// A cursor chunk's notices: what the server said while its rows were
  /// produced. Empty for the parts of a [DbResult], whose notices are
  /// [DbResult.notices] (they may fall between parts).
  final List<DbNotice> notices;

  DbResultPart(this._columns, this.rows, this.affectedRows, this.commandTag,
      {this.notices = const []});

  /// The columns, in order.
  List<DbColumn> get columns => _columns.list;

  /// The rows as maps from column name to value, computed once.
  late final List<Map<String, Object?>> maps =
      List.unmodifiable([for (final r in rows) r.toMap()]);
}

/// The outcome of one query call: one part per statement (a query without
/// parameters may hold several statements). The getters read the last
/// part, as libpq's PQexec returns the last result. A plain Dart object:
/// it owns no native memory and can be sent between isolates.
final class DbResult {
  /// Every statement's result, in order.
  final List<DbResultPart> parts;

  /// What the server said while the call ran (NOTICE, WARNING, ...), in
  /// order; [DbNotice.afterParts] places each among [parts]. porterd keeps
  /// the first 100 of a call: [noticesDropped] counts the others.
  final List<DbNotice> notices;

  /// Notices porterd did not keep (past its bound of one call).
  final int noticesDropped;

  DbResult(this.parts, {this.notices = const [], this.noticesDropped = 0});

  DbResultPart? get _last => parts.isEmpty ? null : parts.last;

  /// The last statement's columns.
  List<DbColumn> get columns => _last?.columns ?? const [];

  /// The last statement's rows.
  List<Row> get rows => _last?.rows ?? const [];

  /// Rows affected by the last statement.
  int get affectedRows => _last?.affectedRows ?? 0;

  /// The last statement's command tag.
  String get commandTag => _last?.commandTag ?? '';

  /// The last statement's rows as maps from column name to value, computed
  /// once.
  List<Map<String, Object?>> get maps => _last?.maps ?? const [];

  /// The first row, or null when there is none.
  Row? get firstOrNull => rows.isEmpty ? null : rows.first;
}

/// Checks a streamed query's rows per chunk (1..100000, porter.h's
/// bounds) before anything is sent. Throws [RangeError].
void checkChunkRows(int chunkRows) =>
    RangeError.checkValueInInterval(chunkRows, 1, 100000, 'chunkRows');

/// Native query parameters, allocated for one call and freed by [free].
final class NativeParams {
  final Pointer<porter_db_param> array;
  final int length;
  final List<Pointer<Uint8>> _buffers;

  NativeParams._(this.array, this.length, this._buffers);

  /// Copies parameters already encoded (see [encodeParams], which throws
  /// [ArgumentError] for values it does not take) into native memory.
  factory NativeParams(List<EncodedParam> values) {
    final array =
        values.isEmpty ? nullptr : calloc<porter_db_param>(values.length);
    final buffers = <Pointer<Uint8>>[];
    for (var i = 0; i < values.length; i++) {
      final v = values[i];
      final p = array[i];
      p.type_oid = v.typeOid;
      p.binary = v.binary ? 1 : 0;
      final bytes = v.bytes;
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
    return NativeParams._(array, values.length, buffers);
  }

  void free() {
    for (final b in _buffers) {
      calloc.free(b);
    }
    _buffers.clear();
    if (array != nullptr) calloc.free(array);
  }
}

/// Copies the selected part of native result [r] into Dart ([notices]:
/// a cursor chunk's).
DbResultPart readPart(PorterBindings b, Pointer<porter_db_result> r,
    {List<DbNotice> notices = const []}) {
  final nf = b.porter_db_nfields(r);
  final nt = b.porter_db_ntuples(r);
  final cols = DbColumns([
    for (var c = 0; c < nf; c++)
      DbColumn(cString(b.porter_db_fname(r, c)), b.porter_db_ftype(r, c))
  ]);
  final rows = <Row>[];
  for (var i = 0; i < nt; i++) {
    final row = List<Object?>.filled(nf, null);
    for (var c = 0; c < nf; c++) {
      if (b.porter_db_getisnull(r, i, c) != 0) continue;
      final len = b.porter_db_getlength(r, i, c);
      // A view of native memory: decodeText copies what it keeps.
      final bytes = b.porter_db_getvalue(r, i, c).cast<Uint8>().asTypedList(len);
      row[c] = decodeText(cols.list[c].typeOid, bytes);
    }
    rows.add(Row(cols, row));
  }
  return DbResultPart(cols, List.unmodifiable(rows), b.porter_db_cmdtuples(r),
      cString(b.porter_db_cmdstatus(r)),
      notices: notices);
}

/// Every part of native result [r].
DbResult readResult(PorterBindings b, Pointer<porter_db_result> r) {
  final n = b.porter_db_nresults(r);
  final parts = <DbResultPart>[];
  for (var i = 0; i < n; i++) {
    b.porter_db_select(r, i);
    parts.add(readPart(b, r));
  }
  return DbResult(List.unmodifiable(parts),
      notices: readNotices(b, r),
      noticesDropped: b.porter_db_notices_dropped(r));
}

/// The safety net for cursors dropped without [DbCursor.close]: a
/// NativeFinalizer on porter_db_cursor_free, which never waits (libporter's
/// background thread tells porterd), so it may run on any thread, at GC
/// time or at a hot restart. One per isolate.
NativeFinalizer? _cursorFinalizer;

/// A native streamed result, owned by Dart: chunks are pulled with [next]
/// (each call blocks the calling thread for at most its timeout) and the
/// cursor is freed by [close] (in a `finally`), or by a finalizer if the
/// object becomes unreachable first (a safety net; porterd then cancels
/// the query).
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
          NativeFinalizer(_b.addresses.porter_db_cursor_free.cast());
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

  /// Whether [close], [free] or [release] was called.
  bool get isClosed => _ptr == nullptr;

  /// Gives up ownership without closing (another isolate will): the
  /// finalizer is detached and [address] is returned.
  int release() {
    final a = _ptr.address;
    if (_owned && _ptr != nullptr) _cursorFinalizer!.detach(this);
    _ptr = nullptr;
    return a;
  }

  /// The next chunk of rows, or null after the last one. Blocks for at
  /// most [timeoutMs] (0: the default), and never past the stream's
  /// deadline. [callId] 0 uses the open's id (so a cancel of the open's
  /// id stops this read). Throws [PorterDbException] when the query
  /// failed on the server (the error may arrive with any chunk),
  /// [PorterTimeoutException], ...
  DbResultPart? next(int timeoutMs, {int callId = 0}) {
    if (_ptr == nullptr) throw StateError('cursor closed');
    final out = calloc<Pointer<porter_db_result>>();
    try {
      final rc = _b.porter_db_cursor_read(_ptr, callId, timeoutMs, out);
      final last = cString(_b.porter_last_error_message());
      final r = out.value;
      try {
        if (rc < 0) {
          throw dbError(_b, rc, cString(_b.porter_error_name(rc)), r, last);
        }
        if (rc == 0) return null;
        return readPart(_b, r, notices: readNotices(_b, r));
      } finally {
        _b.porter_db_result_free(r);
      }
    } finally {
      calloc.free(out);
    }
  }

  /// Closes the cursor (porterd cancels a query not read to its end),
  /// waiting up to [timeoutMs] for porterd to confirm; the cursor is freed
  /// either way. Calling it again does nothing.
  void close([int timeoutMs = 1000]) {
    if (_ptr == nullptr) return;
    if (_owned) _cursorFinalizer!.detach(this);
    _b.porter_db_cursor_close(_ptr, timeoutMs);
    _ptr = nullptr;
  }

  /// Frees the cursor without waiting (libporter's background thread
  /// tells porterd). Calling it again, or [close] after it, does nothing.
  void free() {
    if (_ptr == nullptr) return;
    if (_owned) _cursorFinalizer!.detach(this);
    _b.porter_db_cursor_free(_ptr);
    _ptr = nullptr;
  }
}
