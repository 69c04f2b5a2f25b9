// What PostgreSQL says besides rows: the notices of a call (NOTICE,
// WARNING, INFO, ...) and the fields of an error (position, context,
// schema, table, column, constraint, ...), read from a native result.
//
// Both are built from a field getter (porter_db_notice_field or
// porter_db_error_field on a native result), so the mapping is tested
// without a daemon (test/db_diag_test.dart) and the native reading is one
// line each.
import 'dart:ffi';

import 'bindings.g.dart';
import 'db.dart';
import 'errors.dart';
import 'native.dart' show cString;

/// One diagnostic field by its porter_db_diag number (libpq's PG_DIAG_*
/// letter): its text, "" when absent.
typedef DbFieldReader = String Function(int field);

/// A message the server sent while a call ran, without failing it:
/// `RAISE NOTICE`, `DROP TABLE IF EXISTS` of a missing table, a WARNING.
/// A plain Dart object.
final class DbNotice {
  /// NOTICE, WARNING, INFO, DEBUG or LOG (as the server names it).
  final String severity;

  /// The SQLSTATE, e.g. `00000` or `01000`.
  final String sqlstate;

  /// The primary message.
  final String message;

  /// DETAIL, HINT and CONTEXT ("" when absent).
  final String detail;
  final String hint;
  final String context;

  /// For a call of several statements (or a cursor chunk), how many result
  /// parts came before the notice ([DbResult.parts]).
  final int afterParts;

  const DbNotice(
      {required this.severity,
      required this.message,
      this.sqlstate = '',
      this.detail = '',
      this.hint = '',
      this.context = '',
      this.afterParts = 0});

  /// A notice from its fields.
  factory DbNotice.fromFields(DbFieldReader field, {int afterParts = 0}) =>
      DbNotice(
          severity: field(porter_db_diag.PORTER_DB_DIAG_SEVERITY),
          sqlstate: field(porter_db_diag.PORTER_DB_DIAG_SQLSTATE),
          message: field(porter_db_diag.PORTER_DB_DIAG_MESSAGE_PRIMARY),
          detail: field(porter_db_diag.PORTER_DB_DIAG_MESSAGE_DETAIL),
          hint: field(porter_db_diag.PORTER_DB_DIAG_MESSAGE_HINT),
          context: field(porter_db_diag.PORTER_DB_DIAG_CONTEXT),
          afterParts: afterParts);

  /// As psql prints it: `NOTICE:  text`, then DETAIL and HINT lines.
  @override
  String toString() => '$severity:  $message'
      '${detail.isEmpty ? '' : '\nDETAIL:  $detail'}'
      '${hint.isEmpty ? '' : '\nHINT:  $hint'}';
}

/// A failed query, with the fields the server sent ("" or null when
/// absent): [sqlstate] (e.g. `23505` for a unique violation), [detail],
/// [hint], where in the statement ([position]), the call stack
/// ([context]), the object involved ([schema], [table], [column],
/// [dataType], [constraint]). [partial] holds what the call got before the
/// failure: the results of the statements of a multi-statement string
/// that ran before the one that failed, and the notices.
class PorterDbException extends PorterException {
  /// The five-character SQLSTATE; "" when the failure is not the server's.
  final String sqlstate;

  /// The server's DETAIL, or "".
  final String detail;

  /// The server's HINT, or "".
  final String hint;

  /// ERROR, FATAL or PANIC; "" when the failure is not the server's.
  final String severity;

  /// Where in the statement the error is: a 1-based index in characters
  /// (Unicode code points, as psql's caret counts them), or null.
  final int? position;

  /// For an error inside an internally generated statement (a PL/pgSQL
  /// function's), that statement and the position in it; "" and null
  /// otherwise.
  final String internalQuery;
  final int? internalPosition;

  /// The call stack (PL/pgSQL functions, SQL functions), one line each,
  /// innermost first; "" when none.
  final String context;

  /// The object the error is about, when the server names one ("" when
  /// not): a constraint violation names its [schema], [table] and
  /// [constraint]; a NOT NULL violation its [column]; a domain check its
  /// [dataType].
  final String schema;
  final String table;
  final String column;
  final String dataType;
  final String constraint;

  /// The results of the statements before the failing one, and the
  /// notices of the call; null when the failure came with no result (a
  /// refused request, a connection error).
  final DbResult? partial;

  const PorterDbException(int code, String name, String message,
      {this.sqlstate = '',
      this.detail = '',
      this.hint = '',
      this.severity = '',
      this.position,
      this.internalQuery = '',
      this.internalPosition,
      this.context = '',
      this.schema = '',
      this.table = '',
      this.column = '',
      this.dataType = '',
      this.constraint = '',
      this.partial})
      : super(code, name, message);

  /// The exception for code [code] with [message] (porter_db_message)
  /// and the error's other fields.
  factory PorterDbException.fromFields(
      int code, String name, String message, DbFieldReader field,
      {DbResult? partial}) {
    return PorterDbException(code, name, message,
        sqlstate: field(porter_db_diag.PORTER_DB_DIAG_SQLSTATE),
        detail: field(porter_db_diag.PORTER_DB_DIAG_MESSAGE_DETAIL),
        hint: field(porter_db_diag.PORTER_DB_DIAG_MESSAGE_HINT),
        severity: field(porter_db_diag.PORTER_DB_DIAG_SEVERITY),
        position:
            _position(field(porter_db_diag.PORTER_DB_DIAG_STATEMENT_POSITION)),
        internalQuery: field(porter_db_diag.PORTER_DB_DIAG_INTERNAL_QUERY),
        internalPosition:
            _position(field(porter_db_diag.PORTER_DB_DIAG_INTERNAL_POSITION)),
        context: field(porter_db_diag.PORTER_DB_DIAG_CONTEXT),
        schema: field(porter_db_diag.PORTER_DB_DIAG_SCHEMA_NAME),
        table: field(porter_db_diag.PORTER_DB_DIAG_TABLE_NAME),
        column: field(porter_db_diag.PORTER_DB_DIAG_COLUMN_NAME),
        dataType: field(porter_db_diag.PORTER_DB_DIAG_DATATYPE_NAME),
        constraint: field(porter_db_diag.PORTER_DB_DIAG_CONSTRAINT_NAME),
        partial: partial);
  }

  /// The error as psql shows it for [sql], the statement that failed:
  /// `ERROR:  message`, then `LINE n: ` with the line holding [position]
  /// and a caret under it, then DETAIL, HINT and CONTEXT.
  String describe(String sql) {
    final out = StringBuffer('${severity.isEmpty ? 'ERROR' : severity}:  '
        '$message');
    final line = caretLine(sql, position);
    if (line != null) out.write('\n$line');
    if (detail.isNotEmpty) out.write('\nDETAIL:  $detail');
    if (hint.isNotEmpty) out.write('\nHINT:  $hint');
    if (context.isNotEmpty) out.write('\nCONTEXT:  $context');
    return out.toString();
  }

  @override
  String toString() => 'PorterDbException($name $code'
      '${sqlstate.isEmpty ? '' : ' SQLSTATE $sqlstate'}): $message'
      '${position == null ? '' : ' (at character $position)'}'
      '${detail.isEmpty ? '' : '\nDETAIL: $detail'}'
      '${hint.isEmpty ? '' : '\nHINT: $hint'}'
      '${context.isEmpty ? '' : '\nCONTEXT: $context'}';
}

int? _position(String s) {
  final n = int.tryParse(s);
  return n == null || n < 1 ? null : n;
}

/// psql's `LINE n: text` and a caret line under character [position]
/// (1-based, in code points) of [sql]; null when [position] is null or
/// past the end. Tabs are kept so that the caret lines up under them.
String? caretLine(String sql, int? position) {
  if (position == null) return null;
  final cps = sql.runes.toList();
  if (position > cps.length + 1) return null;
  final at = position - 1;
  var start = 0, lineNo = 1;
  for (var i = 0; i < at; i++) {
    if (cps[i] == 0x0a) {
      start = i + 1;
      lineNo++;
    }
  }
  var end = at;
  while (end < cps.length && cps[end] != 0x0a) {
    end++;
  }
  final prefix = 'LINE $lineNo: ';
  final text = String.fromCharCodes(cps.sublist(start, end));
  final pad = StringBuffer(' ' * prefix.length);
  for (final c in cps.sublist(start, at)) {
    pad.write(c == 0x09 ? '\t' : ' ');
  }
  return '$prefix$text\n$pad^';
}

/// The notices native result [r] carries (none for nullptr).
List<DbNotice> readNotices(PorterBindings b, Pointer<porter_db_result> r) {
  if (r == nullptr) return const [];
  final n = b.porter_db_nnotices(r);
  return List.unmodifiable([
    for (var i = 0; i < n; i++)
      DbNotice.fromFields((f) => cString(b.porter_db_notice_field(r, i, f)),
          afterParts: b.porter_db_notice_before(r, i))
  ]);
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
    var msg = r == nullptr ? '' : cString(b.porter_db_message(r));
    if (msg.isEmpty) msg = lastMessage;
    return isDb
        ? PorterDbException(code, name, msg)
        : PorterException.fromCode(code, name, msg);
  }
  String field(int f) {
    final v = cString(b.porter_db_error_field(r, f));
    if (v.isNotEmpty) return v;
    // The three fields porter.h had before porter_db_error_field.
    return switch (f) {
      porter_db_diag.PORTER_DB_DIAG_SQLSTATE => cString(b.porter_db_sqlstate(r)),
      porter_db_diag.PORTER_DB_DIAG_MESSAGE_DETAIL =>
        cString(b.porter_db_detail(r)),
      porter_db_diag.PORTER_DB_DIAG_MESSAGE_HINT => cString(b.porter_db_hint(r)),
      _ => '',
    };
  }

  final msg = cString(b.porter_db_message(r));
  return PorterDbException.fromFields(
      code, name, msg.isEmpty ? lastMessage : msg, field,
      partial: readResult(b, r));
}
