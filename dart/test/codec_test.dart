// Pure unit tests: no daemon, no database, no native library. They decode
// PostgreSQL's text forms (test/fixtures/pg_text.json, which
// tests/ffi/test_isolates.py checks byte for byte against a real server)
// and encode parameters, map error codes and check headers.
import 'dart:convert';
import 'dart:io';
import 'dart:typed_data';

import 'package:porter/porter.dart';
import 'package:porter/src/codec.dart';
import 'package:porter/src/http.dart' show requestHeaders;
import 'package:porter/src/http_upload.dart' show checkUpload;
import 'package:test/test.dart';

Object? expected(Object? tagged) {
  if (tagged == null) return null;
  final m = tagged as Map<String, Object?>;
  final tag = m.keys.single;
  final v = m[tag];
  switch (tag) {
    case 'int' || 'bool' || 'string' || 'json':
      return v;
    case 'double':
      return v is String ? double.parse(v) : (v as num).toDouble();
    case 'bytes':
      final hex = v as String;
      return Uint8List.fromList([
        for (var i = 0; i < hex.length; i += 2)
          int.parse(hex.substring(i, i + 2), radix: 16)
      ]);
    case 'utc':
      return DateTime.parse(v as String).toUtc();
    case 'wall' || 'wall_param':
      final t = DateTime.parse(v as String);
      final wall = DateTime.utc(t.year, t.month, t.day, t.hour, t.minute,
          t.second, t.millisecond, t.microsecond);
      return tag == 'wall' ? wall : DbParam(wall, typeOid: PgType.timestamp);
    case 'date':
      final s = v as String;
      final neg = s.startsWith('-');
      final p = (neg ? s.substring(1) : s).split('-').map(int.parse).toList();
      return DateTime.utc(neg ? -p[0] : p[0], p[1], p[2]);
    case 'interval':
      final l = (v as List<Object?>).cast<int>();
      return PgInterval(l[0], l[1], l[2]);
    case 'list':
      return [for (final e in v as List<Object?>) expected(e)];
  }
  throw StateError('unknown tag $tag');
}

void main() {
  final fixture = jsonDecode(
          File('test/fixtures/pg_text.json').readAsStringSync())
      as Map<String, Object?>;
  final cases = (fixture['cases'] as List<Object?>).cast<Map<String, Object?>>();

  group('decoding every type from its text form', () {
    for (final c in cases) {
      test('${c['sql']}', () {
        final text = Uint8List.fromList(utf8.encode(c['text'] as String));
        final got = decodeText(c['oid'] as int, text);
        final want = expected(c['dart']);
        if (want is double && want.isNaN) {
          expect(got, isA<double>().having((d) => d.isNaN, 'isNaN', true));
        } else if (want is List && want.isNotEmpty && want.first is double &&
            (want.last as double).isNaN) {
          expect((got as List).first, want.first);
          expect(((got).last as double).isNaN, isTrue);
        } else {
          expect(got, want);
          if (want != null) expect(got.runtimeType, want.runtimeType);
        }
      });
    }
  });

  group('parameters as the server accepts them', () {
    final params =
        (fixture['params'] as List<Object?>).cast<Map<String, Object?>>();
    for (final c in params) {
      test('${c['dart']} -> ${c['sent']}', () {
        final e = encodeParam(expected(c['dart']));
        final sent = c['sent'] as String?;
        final binary = c['binary'] == true;
        expect(e.binary, binary);
        expect(e.typeOid, c['oid']);
        if (sent == null) {
          expect(e.bytes, isNull);
        } else if (binary) {
          expect(e.bytes, expected({'bytes': sent}));
        } else {
          expect(utf8.decode(e.bytes!), sent);
        }
      });
    }
  });

  group('decoding refuses to guess', () {
    test('malformed bytea stays text', () {
      for (final bad in [r'\x0', r'\xzz', r'\400', r'\9']) {
        expect(decodeText(PgType.bytea, Uint8List.fromList(utf8.encode(bad))),
            bad);
      }
    });
    test('non-ISO DateStyle and unknown types come back as text', () {
      expect(decodeString(PgType.timestamptz, 'Thu Feb 29 13:14:15 2024 UTC'),
          'Thu Feb 29 13:14:15 2024 UTC');
      expect(decodeString(PgType.date, '02/29/2024'), '02/29/2024');
      expect(decodeString(PgType.interval, 'P1Y2M'), 'P1Y2M');
      expect(decodeString(99999, '{1,2}'), '{1,2}');
      expect(decodeString(PgType.int4, 'x'), 'x');
      expect(decodeString(1007, '{1,2'), '{1,2');
    });
    test('array bounds prefix', () {
      expect(decodeString(1007, '[0:1]={5,6}'), [5, 6]);
    });
    test('dates and times past DateTime\'s range stay text', () {
      // PostgreSQL stores them; the DateTime constructors throw for them.
      expect(decodeString(PgType.date, '5874897-12-31'), '5874897-12-31');
      expect(decodeString(PgType.date, '275761-01-01'), '275761-01-01');
      expect(decodeString(PgType.timestamp, '294276-12-31 23:59:59'),
          '294276-12-31 23:59:59');
      // In range until the shift to UTC takes it out.
      expect(decodeString(PgType.timestamptz, '275760-09-13 00:00:00-01'),
          '275760-09-13 00:00:00-01');
      expect(decodeString(1182, '{2024-02-29,5874897-12-31}'),
          [DateTime.utc(2024, 2, 29), '5874897-12-31']);
      expect(decodeString(PgType.date, '275760-09-13'),
          DateTime.utc(275760, 9, 13));
    });
  });

  group('parameters', () {
    String text(EncodedParam p) => utf8.decode(p.bytes!);
    test('each Dart type with its text and type OID', () {
      expect(encodeParam(null).bytes, isNull);
      expect(encodeParam('héllo').typeOid, 0);
      expect(text(encodeParam(-42)), '-42');
      expect(encodeParam(-42).typeOid, PgType.int8);
      expect(text(encodeParam(double.nan)), 'NaN');
      expect(text(encodeParam(double.negativeInfinity)), '-Infinity');
      expect(encodeParam(1.5).typeOid, PgType.float8);
      expect(text(encodeParam(true)), 't');
      expect(encodeParam(false).typeOid, PgType.boolean);
      final t = DateTime.utc(2024, 2, 29, 13, 14, 15, 500);
      expect(text(encodeParam(t)), '2024-02-29 13:14:15.500000+00');
      expect(encodeParam(t).typeOid, PgType.timestamptz);
      expect(text(encodeParam(DateTime.utc(-43, 3, 15))),
          '0044-03-15 00:00:00+00 BC');
      final b = Uint8List.fromList([0, 255]);
      expect(encodeParam(b).binary, isTrue);
      expect(encodeParam(b).bytes, b);
      expect(encodeParam(b).typeOid, PgType.bytea);
      expect(text(encodeParam({'a': [1, null]})), '{"a":[1,null]}');
      expect(text(encodeParam(const PgInterval(14, 3, 5))),
          '14 mons 3 days 5 microseconds');
    });
    test('wall-clock time for timestamp columns', () {
      final p = encodeParam(DbParam(DateTime.utc(2024, 1, 2, 3, 4, 5),
          typeOid: PgType.timestamp));
      expect(text(p), '2024-01-02 03:04:05');
      expect(p.typeOid, PgType.timestamp);
    });
    test('lists become array literals typed by their elements', () {
      expect(text(encodeParam([1, null, 3])), '{1,NULL,3}');
      expect(encodeParam([1, 2]).typeOid, PgType.int8Array);
      expect(encodeParam([1, 2.5]).typeOid, PgType.float8Array);
      expect(text(encodeParam(['a b', 'c"d', r'e\f', ''])),
          r'{"a b","c\"d","e\\f",""}');
      expect(text(encodeParam([
        [1, 2],
        [3, 4]
      ])), '{{1,2},{3,4}}');
      expect(text(encodeParam([Uint8List.fromList([0, 1])])), r'{"\\x0001"}');
      expect(encodeParam(<Object?>[]).typeOid, 0);
      // What the decoder reads back is what was sent.
      expect(
          decodeString(PgType.textArray,
              text(encodeParam(['a b', 'c"d', r'e\f', '', null]))),
          ['a b', 'c"d', r'e\f', '', null]);
    });
    test('refused in the calling isolate with the parameter named', () {
      expect(() => encodeParams([1, Object()]),
          throwsA(isA<ArgumentError>().having((e) => e.name, 'name', 'params[1]')));
      expect(() => encodeParam([1, 'a']), throwsArgumentError);
      expect(() => encodeParam({'a': Object()}), throwsArgumentError);
    });
  });

  group('rows', () {
    final cols = DbColumns(const [
      DbColumn('id', PgType.int8),
      DbColumn('note', PgType.text),
      DbColumn('id', PgType.int4),
    ]);
    final row = Row(cols, [7, null, 8]);
    test('by index and by name; the first of repeated names wins', () {
      expect(row[0], 7);
      expect(row['id'], 7);
      expect(row.getInt('id'), 7);
      expect(row.getOrNull<String>('note'), isNull);
      expect(row.toMap(), {'id': 7, 'note': null});
    });
    test('typed getters say what is wrong', () {
      expect(() => row.getString('note'), throwsStateError);
      expect(() => row.getString('id'), throwsStateError);
      expect(() => row['nope'], throwsArgumentError);
      expect(() => row[3], throwsRangeError);
    });
    test('a session id prints as the uint64 porterd gave', () {
      // An id is a uint64 on the wire: one with the top bit set is a
      // negative int in Dart.
      expect('${const DbSession(-1)}', 'DbSession(0xffffffffffffffff)');
      expect('${const DbSession(-0x7ffffffffffffff0 - 16)}',
          'DbSession(0x8000000000000000)');
      expect('${const DbSession(0x1234abcd)}', 'DbSession(0x1234abcd)');
    });
    test('maps are computed once', () {
      final part = DbResultPart(cols, [row], 0, 'SELECT 1');
      expect(identical(part.maps, part.maps), isTrue);
      expect(DbResult([part]).maps, [
        {'id': 7, 'note': null}
      ]);
    });
  });

  group('error mapping', () {
    test('each code gets its class', () {
      expect(PorterException.fromCode(-4, 'PORTER_E_TIMEOUT', 'm'),
          isA<PorterTimeoutException>());
      expect(PorterException.fromCode(-11, 'PORTER_E_CANCELLED', 'm'),
          isA<PorterCancelledException>());
      expect(PorterException.fromCode(-20, 'PORTER_E_DB', 'm'),
          isA<PorterDbException>());
      expect(PorterException.fromCode(-33, 'PORTER_E_HTTP_HOST', 'm'),
          isA<PorterHttpException>());
      expect(
          PorterException.fromCode(-40, 'PORTER_E_FILE_NOT_FOUND', 'm'),
          isA<PorterFileException>()
              .having((e) => e.kind, 'kind', FileErrorKind.notFound));
      // Every code of porter.h has its class: a code falling through to
      // the plain PorterException would leave callers matching on text.
      final classes = <int, TypeMatcher<PorterException>>{
        porter_error.PORTER_E_INVAL: isA<PorterInvalidArgumentException>(),
        porter_error.PORTER_E_NOMEM: isA<PorterOutOfMemoryException>(),
        porter_error.PORTER_E_UNREACHABLE: isA<PorterUnreachableException>(),
        porter_error.PORTER_E_TIMEOUT: isA<PorterTimeoutException>(),
        porter_error.PORTER_E_CONN_LOST: isA<PorterConnectionLostException>(),
        porter_error.PORTER_E_PROTOCOL: isA<PorterProtocolException>(),
        porter_error.PORTER_E_TOO_LARGE: isA<PorterTooLargeException>(),
        porter_error.PORTER_E_BUSY: isA<PorterBusyException>(),
        porter_error.PORTER_E_DENIED: isA<PorterDeniedException>(),
        porter_error.PORTER_E_UNSUPPORTED: isA<PorterUnsupportedException>(),
        porter_error.PORTER_E_CANCELLED: isA<PorterCancelledException>(),
        porter_error.PORTER_E_SHUTDOWN: isA<PorterShutdownException>(),
        porter_error.PORTER_E_INTERNAL: isA<PorterInternalException>(),
        porter_error.PORTER_E_NOT_FOUND: isA<PorterNotFoundException>(),
        porter_error.PORTER_E_DB: isA<PorterDbException>(),
        porter_error.PORTER_E_DB_CONNECT: isA<PorterDbException>(),
        porter_error.PORTER_E_DB_SESSION: isA<PorterDbException>(),
        porter_error.PORTER_E_DB_BROKEN: isA<PorterDbException>(),
        porter_error.PORTER_E_HTTP: isA<PorterHttpException>(),
        porter_error.PORTER_E_HTTP_SCHEME: isA<PorterHttpException>(),
        porter_error.PORTER_E_HTTP_TOO_LARGE: isA<PorterHttpException>(),
        porter_error.PORTER_E_HTTP_HOST: isA<PorterHttpException>(),
        porter_error.PORTER_E_HTTP_REDIRECTS: isA<PorterHttpException>(),
        porter_error.PORTER_E_HTTP_CONNECT: isA<PorterHttpException>(),
        porter_error.PORTER_E_HTTP_TLS: isA<PorterHttpException>(),
        porter_error.PORTER_E_FILE_NOT_FOUND: isA<PorterFileException>(),
        porter_error.PORTER_E_FILE_PERM: isA<PorterFileException>(),
        porter_error.PORTER_E_FILE_ISDIR: isA<PorterFileException>(),
        porter_error.PORTER_E_FILE_EXISTS: isA<PorterFileException>(),
        porter_error.PORTER_E_FILE_NOSPACE: isA<PorterFileException>(),
        porter_error.PORTER_E_FILE_ESCAPE: isA<PorterFileException>(),
        porter_error.PORTER_E_FILE_IO: isA<PorterFileException>(),
        porter_error.PORTER_E_FILE_NOTDIR: isA<PorterFileException>(),
        porter_error.PORTER_E_FILE_ROOT: isA<PorterFileException>(),
      };
      classes.forEach((code, matcher) {
        final e = PorterException.fromCode(code, 'name', 'm');
        expect(e, matcher.having((e) => e.code, 'code', code), reason: '$code');
      });
      // A code this package does not know stays a plain PorterException.
      final other = PorterException.fromCode(-99, 'PORTER_E_NEWER', 'm');
      expect(other.runtimeType, PorterException);
      expect(other.code, -99);
    });
  });

  group('request headers', () {
    test('repeated names, in order', () {
      final h = requestHeaders({
        'Accept': ['text/html', 'application/json'],
        'X-One': '1'
      });
      expect([for (final x in h) '$x'],
          ['Accept: text/html', 'Accept: application/json', 'X-One: 1']);
    });
    test('values that would split a header are refused', () {
      expect(() => requestHeaders({'X': 'a\r\nB: c'}), throwsArgumentError);
      expect(() => requestHeaders({'X': 'a\u0000'}), throwsArgumentError);
      expect(() => requestHeaders({'Bad Name': 'v'}), throwsArgumentError);
      expect(() => requestHeaders({'': 'v'}), throwsArgumentError);
      expect(() => requestHeaders({'X': 3}), throwsArgumentError);
    });
  });

  group('upload checks', () {
    test('framing headers, HEAD and negative sizes are refused', () {
      for (final name in ['Content-Length', 'transfer-encoding', 'EXPECT']) {
        expect(() => checkUpload('POST', [HttpHeader(name, '1')], null),
            throwsArgumentError);
      }
      expect(() => checkUpload('head', const [], null), throwsArgumentError);
      expect(() => checkUpload('PUT', const [], -1), throwsArgumentError);
      // What is fine: other headers, a known or unknown size, any method
      // with a body.
      checkUpload('PUT', const [HttpHeader('Content-Type', 'a/b')], 0);
      checkUpload('POST', const [], null);
      checkUpload('PATCH', const [], 1 << 40);
    });
  });

  group('timeouts', () {
    test('per pool, by kind of call', () {
      const t = PorterTimeouts(query: Duration(seconds: 30));
      expect(t.query, const Duration(seconds: 30));
      expect(t.http, isNull);
    });
  });
}
