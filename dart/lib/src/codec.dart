// PostgreSQL values <-> Dart values: decoding the text form of a result
// value by its type OID, and encoding query parameters. Pure Dart, no FFI:
// everything here is unit-tested without a daemon (test/codec_test.dart),
// against the text forms tests/ffi/test_isolates.py checks on a real server.
//
// Why text and not binary results: porterd relays libpq's results, and
// libpq asks for text unless each query says otherwise. Text is what every
// porter client (porterctl, C callers) already reads, it is self-describing
// for types the package does not know (they come back as their String),
// and numeric and interval have no lossless binary <-> Dart mapping anyway.
// Decoding costs one pass over bytes already copied out of the native
// result; the values are short. Binary results would need a per-query
// format flag on the wire (a daemon change) for a saving that the ctypes
// tests cannot measure from here; see README "Typed values".
import 'dart:convert';
import 'dart:typed_data';

/// Type OIDs the package knows (pg_type.oid, stable across versions).
abstract final class PgType {
  static const int boolean = 16;
  static const int bytea = 17;
  static const int char = 18;
  static const int name = 19;
  static const int int8 = 20;
  static const int int2 = 21;
  static const int int4 = 23;
  static const int text = 25;
  static const int oid = 26;
  static const int json = 114;
  static const int float4 = 700;
  static const int float8 = 701;
  static const int bpchar = 1042;
  static const int varchar = 1043;
  static const int date = 1082;
  static const int time = 1083;
  static const int timestamp = 1114;
  static const int timestamptz = 1184;
  static const int interval = 1186;
  static const int numeric = 1700;
  static const int uuid = 2950;
  static const int jsonb = 3802;

  static const int boolArray = 1000;
  static const int byteaArray = 1001;
  static const int int8Array = 1016;
  static const int float8Array = 1022;
  static const int textArray = 1009;
  static const int timestamptzArray = 1185;

  /// Element type of each array type decoded as a [List].
  static const Map<int, int> arrayElement = {
    1000: boolean, 1001: bytea, 1002: char, 1003: name, 1005: int2,
    1007: int4, 1016: int8, 1028: oid, 1021: float4, 1022: float8,
    1231: numeric, 1009: text, 1014: bpchar, 1015: varchar, 1182: date,
    1183: time, 1115: timestamp, 1185: timestamptz, 1187: interval,
    2951: uuid, 199: json, 3807: jsonb,
  };
}

/// A PostgreSQL `interval`: months, days and microseconds are separate
/// because their lengths vary (a month is 28 to 31 days, a day 23 to 25
/// hours across a DST change), exactly as PostgreSQL keeps them.
final class PgInterval {
  final int months;
  final int days;
  final int microseconds;

  const PgInterval(this.months, this.days, this.microseconds);

  /// The time part as a [Duration] (months and days not included).
  Duration get time => Duration(microseconds: microseconds);

  @override
  bool operator ==(Object other) =>
      other is PgInterval &&
      other.months == months &&
      other.days == days &&
      other.microseconds == microseconds;

  @override
  int get hashCode => Object.hash(months, days, microseconds);

  @override
  String toString() => 'PgInterval($months months, $days days, '
      '$microseconds us)';

  /// PostgreSQL input syntax, e.g. `14 mons 3 days 14706500000 microseconds`.
  String toSql() => '$months mons $days days $microseconds microseconds';
}

/// Decodes the text form [text] (bytes as porterd delivers them) of a
/// value of type [oid]. Never throws: a value the decoder does not
/// understand (an unknown type, a non-default DateStyle or IntervalStyle,
/// `infinity` dates) comes back as its text, a [String].
Object? decodeText(int oid, Uint8List text) {
  if (oid == PgType.bytea) {
    return decodeBytea(text) ?? utf8.decode(text, allowMalformed: true);
  }
  return decodeString(oid, utf8.decode(text, allowMalformed: true));
}

/// [decodeText] for a value already decoded from UTF-8.
Object? decodeString(int oid, String s) {
  switch (oid) {
    case PgType.int2 || PgType.int4 || PgType.int8 || PgType.oid:
      return int.tryParse(s) ?? s;
    case PgType.float4 || PgType.float8:
      return double.tryParse(s) ?? s;
    case PgType.boolean:
      return s == 't' ? true : (s == 'f' ? false : s);
    case PgType.bytea:
      return decodeBytea(Uint8List.fromList(utf8.encode(s))) ?? s;
    case PgType.date:
      return parseDate(s) ?? s;
    case PgType.timestamp:
      return parseTimestamp(s, withZone: false) ?? s;
    case PgType.timestamptz:
      return parseTimestamp(s, withZone: true) ?? s;
    case PgType.interval:
      return parseInterval(s) ?? s;
    case PgType.json || PgType.jsonb:
      try {
        return jsonDecode(s);
      } on FormatException {
        return s;
      }
  }
  final element = PgType.arrayElement[oid];
  if (element != null) return parseArray(s, element) ?? s;
  // numeric (exact: a String, never a lossy double), text-like types, uuid,
  // time, and every type not listed.
  return s;
}

/// bytea in either output form: hex (`\x00ff`, the default) or escape
/// (`bytea_output = escape`: printable bytes as they are, `\\` and `\ooo`
/// octal). Null when [t] is neither (a malformed value is never guessed).
Uint8List? decodeBytea(Uint8List t) {
  if (t.length >= 2 && t[0] == 0x5c && t[1] == 0x78) {
    if (t.length.isOdd) return null;
    final out = Uint8List((t.length - 2) >> 1);
    for (var i = 0; i < out.length; i++) {
      final hi = _hex(t[2 + 2 * i]), lo = _hex(t[3 + 2 * i]);
      if (hi < 0 || lo < 0) return null;
      out[i] = hi << 4 | lo;
    }
    return out;
  }
  final buf = Uint8List(t.length);
  var n = 0;
  for (var i = 0; i < t.length;) {
    final c = t[i];
    if (c != 0x5c) {
      buf[n++] = c;
      i++;
    } else if (i + 1 < t.length && t[i + 1] == 0x5c) {
      buf[n++] = 0x5c;
      i += 2;
    } else if (i + 3 < t.length &&
        _oct(t[i + 1]) >= 0 &&
        _oct(t[i + 2]) >= 0 &&
        _oct(t[i + 3]) >= 0) {
      final v = _oct(t[i + 1]) << 6 | _oct(t[i + 2]) << 3 | _oct(t[i + 3]);
      if (v > 255) return null;
      buf[n++] = v;
      i += 4;
    } else {
      return null;
    }
  }
  return buf.sublist(0, n);
}

int _hex(int c) {
  if (c >= 0x30 && c <= 0x39) return c - 0x30;
  final l = c | 0x20;
  if (l >= 0x61 && l <= 0x66) return l - 0x61 + 10;
  return -1;
}

int _oct(int c) => c >= 0x30 && c <= 0x37 ? c - 0x30 : -1;

final RegExp _dateRe = RegExp(r'^(\d{4,})-(\d\d)-(\d\d)( BC)?$');
final RegExp _tsRe = RegExp(
    r'^(\d{4,})-(\d\d)-(\d\d) (\d\d):(\d\d):(\d\d)(?:\.(\d{1,6}))?'
    r'(?:([+-])(\d\d)(?::(\d\d))?(?::(\d\d))?)?( BC)?$');

int _year(String digits, bool bc) {
  final y = int.parse(digits);
  // 1 BC is year 0 in the proleptic Gregorian calendar Dart uses.
  return bc ? 1 - y : y;
}

/// A `date` in DateStyle ISO as a UTC midnight [DateTime]; null otherwise
/// (`infinity`, another DateStyle, a date past [DateTime]'s range).
DateTime? parseDate(String s) {
  final m = _dateRe.firstMatch(s);
  if (m == null) return null;
  return _inRange(() => DateTime.utc(_year(m[1]!, m[4] != null),
      int.parse(m[2]!), int.parse(m[3]!)));
}

/// What [make] returns, or null when the [DateTime] it builds is outside
/// the range Dart can hold (years -271821 to 275760): PostgreSQL's dates
/// reach 5874897 AD and its timestamps 294276 AD, and the DateTime
/// constructors throw an ArgumentError past that range, which would turn
/// reading a row into an exception; such a value comes back as its text.
DateTime? _inRange(DateTime Function() make) {
  try {
    return make();
  } on ArgumentError {
    return null;
  } on FormatException {
    // A year of more digits than an int holds.
    return null;
  }
}

/// A `timestamp` ([withZone] false) or `timestamptz` in DateStyle ISO.
///
/// timestamptz is an instant: the result is a UTC [DateTime] for it,
/// whatever the session's TimeZone. timestamp has no zone: its wall-clock
/// fields come back unchanged in a UTC [DateTime] (never shifted by the
/// app's zone). Null for anything else (`infinity`, another DateStyle, a
/// time past [DateTime]'s range).
DateTime? parseTimestamp(String s, {required bool withZone}) {
  final m = _tsRe.firstMatch(s);
  if (m == null || (m[8] != null) != withZone) return null;
  final frac = m[7];
  final us = frac == null ? 0 : int.parse(frac.padRight(6, '0'));
  return _inRange(() {
    final t = DateTime.utc(_year(m[1]!, m[12] != null), int.parse(m[2]!),
        int.parse(m[3]!), int.parse(m[4]!), int.parse(m[5]!),
        int.parse(m[6]!), 0, us);
    if (!withZone) return t;
    final off = Duration(
        hours: int.parse(m[9]!),
        minutes: int.parse(m[10] ?? '0'),
        seconds: int.parse(m[11] ?? '0'));
    // Shifting to UTC may itself leave the range (throws, caught above).
    return m[8] == '+' ? t.subtract(off) : t.add(off);
  });
}

final RegExp _ivUnit =
    RegExp(r'^([+-]?\d+) (years?|mons?|days?)$');
final RegExp _ivTime = RegExp(r'^([+-])?(\d+):(\d\d):(\d\d)(?:\.(\d{1,6}))?$');

/// An `interval` in IntervalStyle postgres (the default), e.g.
/// `1 year 2 mons -3 days 04:05:06.5`; null for any other form.
PgInterval? parseInterval(String s) {
  final parts = s.split(' ');
  var months = 0, days = 0, us = 0;
  for (var i = 0; i < parts.length; i++) {
    final time = _ivTime.firstMatch(parts[i]);
    if (time != null) {
      final frac = time[5];
      final v = ((int.parse(time[2]!) * 60 + int.parse(time[3]!)) * 60 +
                  int.parse(time[4]!)) *
              1000000 +
          (frac == null ? 0 : int.parse(frac.padRight(6, '0')));
      us += time[1] == '-' ? -v : v;
      continue;
    }
    if (i + 1 >= parts.length) return null;
    final unit = _ivUnit.firstMatch('${parts[i]} ${parts[i + 1]}');
    if (unit == null) return null;
    final n = int.parse(unit[1]!);
    switch (unit[2]![0]) {
      case 'y':
        months += 12 * n;
      case 'm':
        months += n;
      default:
        days += n;
    }
    i++;
  }
  return PgInterval(months, days, us);
}

/// An array's text form (`{1,NULL,"a b"}`, nested for several
/// dimensions, with an optional `[1:2]=` bounds prefix) decoded element by
/// element with [elementOid]; NULL elements are null. Null when malformed.
List<Object?>? parseArray(String s, int elementOid) {
  var start = 0;
  if (s.startsWith('[')) {
    final eq = s.indexOf('=');
    if (eq < 0) return null;
    start = eq + 1;
  }
  final p = _ArrayParser(s, start, elementOid);
  try {
    final v = p.list();
    return p.i == s.length ? v : null;
  } on FormatException {
    return null;
  }
}

final class _ArrayParser {
  final String s;
  int i;
  final int oid;
  _ArrayParser(this.s, this.i, this.oid);

  int get _c => i < s.length ? s.codeUnitAt(i) : -1;

  List<Object?> list() {
    if (_c != 0x7b) throw const FormatException('{ expected');
    i++;
    final out = <Object?>[];
    if (_c == 0x7d) {
      i++;
      return out;
    }
    for (;;) {
      if (_c == 0x7b) {
        out.add(list());
      } else if (_c == 0x22) {
        out.add(decodeString(oid, _quoted()));
      } else {
        final from = i;
        while (_c != 0x2c && _c != 0x7d && _c != -1) {
          i++;
        }
        final raw = s.substring(from, i);
        out.add(raw == 'NULL' ? null : decodeString(oid, raw));
      }
      if (_c == 0x2c) {
        i++;
        continue;
      }
      if (_c == 0x7d) {
        i++;
        return out;
      }
      throw const FormatException(', or } expected');
    }
  }

  String _quoted() {
    i++;
    final b = StringBuffer();
    for (;;) {
      final c = _c;
      if (c == -1) throw const FormatException('unterminated quote');
      i++;
      if (c == 0x22) return b.toString();
      if (c == 0x5c) {
        if (_c == -1) throw const FormatException('dangling backslash');
        b.writeCharCode(_c);
        i++;
      } else {
        b.writeCharCode(c);
      }
    }
  }
}

// ---- Parameters ----

/// One parameter as libporter takes it: the bytes (null for SQL NULL),
/// whether they are in binary format, and the type OID (0: the server
/// infers it). Plain data, sendable to other isolates.
final class EncodedParam {
  final Uint8List? bytes;
  final bool binary;
  final int typeOid;
  const EncodedParam(this.bytes, this.binary, this.typeOid);
}

/// A query parameter with an explicit type OID, for when the Dart type
/// does not say it: `DbParam(DateTime(...), typeOid: PgType.timestamp)`
/// sends wall-clock time without a zone, `DbParam(map, typeOid:
/// PgType.jsonb)` forces jsonb, `DbParam('42', typeOid: PgType.int4)`.
final class DbParam {
  /// Any value [encodeParam] accepts (a [Uint8List] with a type other than
  /// bytea is sent as that type's binary form, as it is).
  final Object? value;

  /// The type OID; 0 lets the server infer it.
  final int typeOid;

  const DbParam(this.value, {this.typeOid = 0});

  /// A value already in PostgreSQL's binary format for type [typeOid].
  const DbParam.binary(Uint8List this.value, {required this.typeOid});
}

/// Encodes one parameter (see the README's table):
///
/// | Dart | sent as | type |
/// | --- | --- | --- |
/// | `null` | SQL NULL | inferred |
/// | `String` | text | inferred by the server |
/// | `int` | text | int8 |
/// | `double` | text (`NaN`, `Infinity` included) | float8 |
/// | `bool` | `t` / `f` | bool |
/// | `DateTime` | ISO 8601 in UTC | timestamptz |
/// | `Uint8List` | binary | bytea |
/// | `List` | array literal | int8[], float8[], bool[], text[], timestamptz[] or bytea[] by its elements; inferred when empty |
/// | `Map` | JSON text | inferred (json or jsonb, from the context) |
/// | [PgInterval] | text | interval |
///
/// Throws [ArgumentError] for anything else (and for lists mixing
/// kinds, maps that are not JSON-encodable), in the calling isolate
/// before anything is allocated or sent.
EncodedParam encodeParam(Object? v) {
  if (v is EncodedParam) return v;
  if (v is DbParam) {
    final inner = v.value;
    if (inner is Uint8List) return EncodedParam(inner, true, v.typeOid);
    if (inner is DateTime && v.typeOid == PgType.timestamp) {
      return EncodedParam(_utf8(_wall(inner)), false, v.typeOid);
    }
    final e = encodeParam(inner);
    return EncodedParam(e.bytes, e.binary, v.typeOid);
  }
  return switch (v) {
    null => const EncodedParam(null, false, 0),
    String s => EncodedParam(_utf8(s), false, 0),
    int i => EncodedParam(_utf8('$i'), false, PgType.int8),
    double d => EncodedParam(_utf8('$d'), false, PgType.float8),
    bool b => EncodedParam(_utf8(b ? 't' : 'f'), false, PgType.boolean),
    DateTime t => EncodedParam(_utf8(_instant(t)), false, PgType.timestamptz),
    Uint8List b => EncodedParam(b, true, PgType.bytea),
    PgInterval iv => EncodedParam(_utf8(iv.toSql()), false, PgType.interval),
    List<Object?> l => _encodeList(l),
    Map<Object?, Object?> m => EncodedParam(_utf8(_json(m)), false, 0),
    _ => throw ArgumentError.value(v, 'params',
        'use null, String, int, double, bool, DateTime, Uint8List, List, '
            'Map, PgInterval or DbParam'),
  };
}

/// Every parameter of a call, or an [ArgumentError] naming the first bad
/// one.
List<EncodedParam> encodeParams(List<Object?> params) => [
      for (var i = 0; i < params.length; i++)
        () {
          try {
            return encodeParam(params[i]);
          } on ArgumentError catch (e) {
            throw ArgumentError.value(params[i], 'params[$i]', '${e.message}');
          }
        }()
    ];

Uint8List _utf8(String s) => utf8.encode(s);

String _json(Object o) {
  try {
    return jsonEncode(o);
  } on JsonUnsupportedObjectError catch (e) {
    throw ArgumentError.value(o, 'params', 'not JSON-encodable: $e');
  }
}

String _two(int n) => n.toString().padLeft(2, '0');

String _dateTimeText(DateTime t) {
  final y = t.year;
  // PostgreSQL writes years before 1 AD as "N BC" (1 BC is year 0).
  final year = y > 0 ? y.toString().padLeft(4, '0') : (1 - y).toString().padLeft(4, '0');
  final us = t.millisecond * 1000 + t.microsecond;
  return '$year-${_two(t.month)}-${_two(t.day)} ${_two(t.hour)}:'
      '${_two(t.minute)}:${_two(t.second)}'
      '${us == 0 ? '' : '.${us.toString().padLeft(6, '0')}'}';
}

String _bc(DateTime t) => t.year > 0 ? '' : ' BC';

/// An instant: the DateTime converted to UTC, with an explicit +00 zone.
String _instant(DateTime t) {
  final u = t.toUtc();
  return '${_dateTimeText(u)}+00${_bc(u)}';
}

/// Wall-clock fields as they are, no zone (for `timestamp`).
String _wall(DateTime t) => '${_dateTimeText(t)}${_bc(t)}';

EncodedParam _encodeList(List<Object?> l) {
  int? oid;
  void kind(int k) {
    if (oid == null || oid == k) {
      oid = k;
    } else if ((oid == PgType.int8Array && k == PgType.float8Array) ||
        (oid == PgType.float8Array && k == PgType.int8Array)) {
      oid = PgType.float8Array;
    } else {
      throw ArgumentError.value(l, 'params', 'a list mixes kinds of values');
    }
  }

  String element(Object? e) {
    switch (e) {
      case null:
        return 'NULL';
      case int i:
        kind(PgType.int8Array);
        return '$i';
      case double d:
        kind(PgType.float8Array);
        return '$d';
      case bool b:
        kind(PgType.boolArray);
        return b ? 't' : 'f';
      case String s:
        kind(PgType.textArray);
        return _quote(s);
      case DateTime t:
        kind(PgType.timestamptzArray);
        return _quote(_instant(t));
      case Uint8List b:
        kind(PgType.byteaArray);
        final hex = StringBuffer(r'\x');
        for (final x in b) {
          hex.write(x.toRadixString(16).padLeft(2, '0'));
        }
        return _quote(hex.toString());
      // After Uint8List, which is a List too.
      case List<Object?> inner:
        return '{${inner.map(element).join(',')}}';
      default:
        throw ArgumentError.value(e, 'params',
            'a list holds null, int, double, bool, String, DateTime, '
                'Uint8List or lists of them');
    }
  }

  final text = '{${l.map(element).join(',')}}';
  return EncodedParam(_utf8(text), false, oid ?? 0);
}

/// An array element in double quotes, with `"` and `\` escaped.
String _quote(String s) =>
    '"${s.replaceAll(r'\', r'\\').replaceAll('"', r'\"')}"';
