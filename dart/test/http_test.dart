// Tests of the HTTP API against a real porterd and the project's loopback
// HTTP test server; see README.md ("Running the tests") for how to start
// them.
import 'dart:async';
import 'dart:isolate';
import 'dart:typed_data';

import 'package:http/http.dart' as http;
import 'package:porter/porter.dart';
import 'package:test/test.dart';

import 'support/daemon.dart';
import 'support/http_server.dart';

// Top-level so that closures sent to other isolates capture nothing
// unsendable (see porter_test.dart).
late TestDaemon daemon;
late TestHttpServer server;
late Porter porter;
late PorterPool pool;

/// [calls] GETs of bodies of their own sizes from a new isolate; returns
/// the bytes checked. Top-level: [base] is passed in (globals are per
/// isolate).
Future<int> getInIsolate(String base, int tag, int calls) => Isolate.run(() {
      final p = Porter();
      var total = 0;
      for (var j = 0; j < calls; j++) {
        final n = (tag * 131 + j * 17) % 20000 + 1;
        final r = p.httpGet(Uri.parse('$base/bin/$n'));
        if (r.status != 200 || r.body.length != n) {
          throw StateError('isolate $tag call $j: ${r.status}, '
              '${r.body.length} of $n bytes');
        }
        for (var i = 0; i < n; i++) {
          if (r.body[i] != i % 251) throw StateError('byte $i differs');
        }
        total += n;
      }
      p.disconnectThread();
      return total;
    });

/// How many requests the test server holds open on /hang right now.
int hanging() => int.parse(porter.httpGet(server.url('/hanging')).text);

/// Waits until porterd holds no HTTP transfer (aborted transfers finish a
/// moment after their caller got its answer).
Future<int> settledTransfers() async {
  final until = DateTime.now().add(const Duration(seconds: 5));
  for (;;) {
    final n = porter.stats().httpTransfers;
    if (n == 0 || DateTime.now().isAfter(until)) return n;
    await Future<void>.delayed(const Duration(milliseconds: 20));
  }
}

void main() {
  setUpAll(() async {
    daemon = await TestDaemon.start();
    server = await TestHttpServer.start();
    porter = Porter();
    pool = await PorterPool.spawn(size: 4, reset: false);
  });

  tearDownAll(() async {
    await pool.close();
    porter.disconnectThread();
    await server.stop();
    await daemon.stop();
  });

  tearDown(() async {
    expect(await settledTransfers(), 0,
        reason: 'porterd still holds HTTP transfers after the test');
  });

  group('sync', () {
    test('GET: status, binary body, headers, URL, timings', () {
      final r = porter.httpGet(server.url('/bin/70000'));
      expect(r.status, 200);
      expect(r.ok, isTrue);
      expect(r.body, pattern(0, 70000));
      expect(r.header('content-LENGTH'), '70000');
      expect(r.header('X-Absent'), isNull);
      expect(r.effectiveUri, server.url('/bin/70000'));
      expect(r.redirects, 0);
      expect(r.timings.total, greaterThan(Duration.zero));
      expect(r.timings.total, greaterThanOrEqualTo(r.timings.firstByte));
      expect(identical(r.ensureSuccess(), r), isTrue);
    });

    test('repeated headers, in order', () {
      final r = porter.httpGet(server.url('/headers'));
      expect(r.headerAll('x-multi'), ['a', 'b']);
      expect(r.headerMap['x-multi'], ['a', 'b']);
      expect(r.headers.where((h) => h.name == 'X-One').single.value, '1');
    });

    test('redirects: followed, limited, refused', () {
      final r = porter.httpGet(server.url('/redirect/3'));
      expect(r.text, 'done');
      expect(r.redirects, 3);
      expect(r.effectiveUri, server.url('/redirect/0'));

      final no = porter.http('GET', server.url('/redirect/1'),
          options: const HttpOptions(followRedirects: false));
      expect(no.status, 302);
      expect(no.header('location'), '/redirect/0');

      expect(
          () => porter.http('GET', server.url('/redirect/5'),
              options: const HttpOptions(maxRedirects: 2)),
          throwsA(isA<PorterHttpException>().having(
              (e) => e.code, 'code', porter_error.PORTER_E_HTTP_REDIRECTS)));
      // A redirect to a scheme other than http(s) is refused; the
      // exception carries the status of the refused redirect.
      expect(
          () => porter.httpGet(
              server.url('/redirect-to?url=ftp://127.0.0.1/x')),
          throwsA(isA<PorterHttpException>()
              .having((e) => e.code, 'code', porter_error.PORTER_E_HTTP_SCHEME)
              .having((e) => e.status, 'status', 302)));
    });

    test('an error status is a response; ensureSuccess throws with it', () {
      final r = porter.httpGet(server.url('/status/404'));
      expect(r.status, 404);
      expect(r.statusLine, 'HTTP/1.1 404 Not Found');
      expect(r.reasonPhrase, 'Not Found');
      expect(r.text, 'status 404');
      expect(
          r.ensureSuccess,
          throwsA(isA<PorterHttpException>()
              .having((e) => e.status, 'status', 404)
              .having((e) => e.url, 'url', '${server.url('/status/404')}')));
    });

    test('methods, headers and bodies are sent as given', () {
      final body = Uint8List.fromList([0, 1, 2, 0, 255]);
      final r = porter.http('PUT', server.url('/echo'),
          headers: {'X-Test-One': 'uno', 'X-Test-Empty': ''}, body: body);
      expect(r.body, body);
      expect(r.header('X-Method'), 'PUT');
      expect(r.header('X-Got-One'), 'uno');
      expect(r.header('X-Got-Empty'), '', reason: 'an empty header is sent');

      final j = porter.httpPostJson(server.url('/echo'), {
        'k': [1, 2, null],
        's': 'ü'
      });
      expect(j.header('X-Method'), 'POST');
      expect(j.json, {
        'k': [1, 2, null],
        's': 'ü'
      });
      final t = porter.httpPostJson(server.url('/echo'), '{"raw":true}');
      expect(t.text, '{"raw":true}');

      expect(() => porter.http('GET', server.url('/echo'), headers: {'Bad Name': 'x'}),
          throwsArgumentError);
      expect(() => porter.http('GET', server.url('/echo'), headers: {'X': 'a\r\nb'}),
          throwsArgumentError);
    });

    test('limits and unreachable peers are typed failures', () {
      expect(
          () => porter.http('GET', server.url('/bin/5000'),
              options: const HttpOptions(maxResponse: 1000)),
          throwsA(isA<PorterHttpException>().having(
              (e) => e.code, 'code', porter_error.PORTER_E_HTTP_TOO_LARGE)));
      expect(
          () => porter.httpGet(Uri.parse('file:///etc/passwd')),
          throwsA(isA<PorterHttpException>().having(
              (e) => e.code, 'code', porter_error.PORTER_E_HTTP_SCHEME)));
      // Port 1 on loopback: nobody listens.
      expect(
          () => porter.httpGet(Uri.parse('http://127.0.0.1:1/')),
          throwsA(isA<PorterHttpException>().having(
              (e) => e.code, 'code', porter_error.PORTER_E_HTTP_CONNECT)));
    });

    test('a timeout stops the transfer', () {
      final sw = Stopwatch()..start();
      expect(
          () => porter.httpGet(server.url('/hang'),
              timeout: const Duration(milliseconds: 300)),
          throwsA(isA<PorterTimeoutException>()));
      expect(sw.elapsed, lessThan(const Duration(seconds: 3)));
    });

    test('a timeout after the head arrived is still a timeout', () async {
      // The server sends its 200 and then one byte every 10 ms: the
      // failure carries that status, and was a PorterHttpException with
      // code PORTER_E_TIMEOUT, past every `on PorterTimeoutException`.
      expect(
          () => porter.httpGet(server.url('/trickle/100000/10'),
              timeout: const Duration(milliseconds: 500)),
          throwsA(isA<PorterTimeoutException>()));
      await expectLater(
          pool.httpGet(server.url('/trickle/100000/10'),
              timeout: const Duration(milliseconds: 500)),
          throwsA(isA<PorterTimeoutException>()));
    });

    test('streamed body: every byte in order, in chunks', () {
      final chunks = <Uint8List>[];
      final head = porter.httpEach(server.url('/bin/3000000'), (c) {
        chunks.add(c);
        return true;
      }, options: const HttpOptions(chunkSize: 65536));
      expect(head.timings.total, greaterThan(Duration.zero));
      expect(chunks.length, greaterThan(10));
      final all = Uint8List.fromList(chunks.expand((c) => c).toList());
      expect(all, pattern(0, 3000000));

      final s = porter.httpStream(server.url('/bin/200000'));
      try {
        expect(s.response.status, 200);
        expect(s.response.body, isEmpty);
        expect(s.response.header('content-length'), '200000');
        var n = 0;
        for (Uint8List? c = s.read(5000); c != null; c = s.read(5000)) {
          expect(c, pattern(n, c.length));
          n += c.length;
        }
        expect(n, 200000);
        expect(s.finalResponse().timings.total, greaterThan(Duration.zero));
      } finally {
        s.close();
      }
    });

    test('stopping early aborts the stream in porterd', () async {
      // The old httpChunks was a sync* generator: a `break` out of the
      // loop never ran its finally, and the transfer stayed in porterd.
      var n = 0;
      porter.httpEach(server.url('/bin/50000000'), (c) {
        expect(c, isNotEmpty);
        return ++n < 3;
      }, options: const HttpOptions(chunkSize: 16384));
      expect(n, 3);
      expect(await settledTransfers(), 0);
    });

    test('isolates calling at once', () async {
      final totals = await Future.wait(
          [for (var i = 0; i < 8; i++) getInIsolate(server.base, i, 20)]);
      expect(totals.every((t) => t > 0), isTrue);
    });
  });

  group('pool', () {
    test('package:http client: GET, POST, repeated headers, errors',
        () async {
      final client = PorterHttpClient(pool);
      try {
        final r = await client.get(server.url('/bin/70000'));
        expect(r.statusCode, 200);
        expect(r.reasonPhrase, 'OK');
        // As IOClient gives it: the server's, for messages.
        final nf = await client.get(server.url('/status/404'));
        expect(nf.statusCode, 404);
        expect(nf.reasonPhrase, 'Not Found');
        expect(r.bodyBytes, pattern(0, 70000));
        final p = await client.post(server.url('/echo'), body: 'hello');
        expect(p.body, 'hello');
        final h = await pool.httpGet(server.url('/headers'),
            headers: {'X-Twice': ['a', 'b']});
        expect(h.status, 200);
        await expectLater(client.get(Uri.parse('ftp://127.0.0.1/x')),
            throwsA(isA<http.ClientException>()));
      } finally {
        client.close();
      }
    });

    test('package:http client: followRedirects and maxRedirects', () async {
      final client = PorterHttpClient(pool);
      try {
        final r = await client.get(server.url('/redirect/2'));
        expect(r.body, 'done');
        final manual = http.Request('GET', server.url('/redirect/1'))
          ..followRedirects = false;
        final m = await http.Response.fromStream(await client.send(manual));
        expect(m.statusCode, 302);
        expect(m.isRedirect, isTrue);
        // maxRedirects 0 with followRedirects: a redirect is an error, as
        // with IOClient, not the daemon's limit of 10.
        final none = http.Request('GET', server.url('/redirect/1'))
          ..maxRedirects = 0;
        await expectLater(client.send(none),
            throwsA(isA<http.ClientException>()));
        final two = http.Request('GET', server.url('/redirect/3'))
          ..maxRedirects = 2;
        await expectLater(client.send(two),
            throwsA(isA<http.ClientException>()));
      } finally {
        client.close();
      }
    });

    test('package:http client: a closed pool fails requests as ClientException',
        () async {
      final own = await PorterPool.spawn(size: 1, reset: false);
      final client = PorterHttpClient(own);
      try {
        expect((await client.get(server.url('/status/200'))).statusCode, 200);
        await own.close();
        // It was a StateError, which code written for package:http does
        // not catch.
        await expectLater(
            client.get(server.url('/status/200')),
            throwsA(isA<http.ClientException>().having(
                (e) => e.message, 'message', contains('PorterPool is closed'))));
        await expectLater(
            client.post(server.url('/echo'), body: List.filled(100000, 1)),
            throwsA(isA<http.ClientException>()));
      } finally {
        client.close();
        await own.close();
      }
    });

    test('a paused body holds no worker', () async {
      final one = await PorterPool.spawn(size: 1, reset: false);
      try {
        final s = await one.httpStream(server.url('/bin/5000000'),
            options: const HttpOptions(chunkSize: 16384));
        final sub = s.body.listen(null);
        sub.pause();
        // The only worker is free while the listener is paused (it used
        // to sleep-poll inside the worker for up to 60 s).
        await one.ping(timeout: const Duration(seconds: 2));
        await sub.cancel();
        expect((await s.done).status, 200);
      } finally {
        await one.close();
      }
      expect(await settledTransfers(), 0);
    });

    test('many concurrent requests, every body intact', () async {
      final rs = await Future.wait([
        for (var i = 0; i < 200; i++) pool.httpGet(server.url('/bin/${i * 50}'))
      ]);
      for (var i = 0; i < 200; i++) {
        expect(rs[i].status, 200);
        expect(rs[i].body, pattern(0, i * 50));
      }
      final j = await pool.httpPostJson(server.url('/echo'), [1, 'two']);
      expect(j.json, [1, 'two']);
      final p = await pool.http('DELETE', server.url('/echo'),
          headers: {'X-Test-K': 'v'});
      expect(p.header('X-Method'), 'DELETE');
      expect(p.header('X-Got-K'), 'v');
    });

    test('failures cross the isolate boundary typed', () async {
      await expectLater(
          pool.httpGet(server.url('/redirect-to?url=ftp://127.0.0.1/x')),
          throwsA(isA<PorterHttpException>()
              .having((e) => e.status, 'status', 302)
              .having((e) => e.url, 'url', contains('/redirect-to'))));
      await expectLater(
          pool.httpGet(server.url('/hang'),
              timeout: const Duration(milliseconds: 300)),
          throwsA(isA<PorterTimeoutException>()));
      await expectLater(pool.http('GET', server.url('/'), headers: {'': 'x'}),
          throwsArgumentError);
    });

    test('a CancelToken stops a hanging request in the daemon', () async {
      final token = PorterCancelToken();
      final f = pool.httpGet(server.url('/hang'),
          timeout: const Duration(seconds: 20), cancel: token);
      while (hanging() == 0) {
        await Future<void>.delayed(const Duration(milliseconds: 10));
      }
      final sw = Stopwatch()..start();
      token.cancel();
      await expectLater(f, throwsA(isA<PorterCancelledException>()));
      // porterd dropped the transfer: the server sees its connection close.
      while (hanging() != 0) {
        expect(sw.elapsed, lessThan(const Duration(seconds: 3)));
        await Future<void>.delayed(const Duration(milliseconds: 10));
      }
      // The worker is free again: the pool still answers at once.
      expect((await pool.httpGet(server.url('/bin/10'))).body, pattern(0, 10));
    });

    test('httpStream: head, then every byte in order', () async {
      final s = await pool.httpStream(server.url('/bin/3000000'),
          options: const HttpOptions(chunkSize: 65536));
      expect(s.status, 200);
      expect(s.response.header('Content-Length'), '3000000');
      final builder = BytesBuilder(copy: false);
      var chunks = 0;
      await for (final c in s.body) {
        builder.add(c);
        chunks++;
      }
      expect(chunks, greaterThan(10));
      expect(builder.takeBytes(), pattern(0, 3000000));
      expect((await s.done).timings.total, greaterThan(Duration.zero));
    });

    test('httpStream: a paused listener pauses the transfer', () async {
      final s = await pool.httpStream(server.url('/bin/20000000'),
          options: const HttpOptions(chunkSize: 16384));
      var got = 0;
      var n = 0;
      final done = Completer<void>();
      late StreamSubscription<Uint8List> sub;
      sub = s.body.listen((c) {
        expect(c, pattern(n, c.length));
        n += c.length;
        got++;
        if (got == 1) sub.pause();
      }, onDone: done.complete, onError: done.completeError);
      while (got == 0) {
        await Future<void>.delayed(const Duration(milliseconds: 10));
      }
      await Future<void>.delayed(const Duration(milliseconds: 300));
      expect(got, 1, reason: 'nothing is delivered while paused');
      // Nothing was pulled while paused: porterd holds the rest, so the
      // transfer is still alive.
      expect(porter.stats().httpTransfers, greaterThan(0));
      sub.resume();
      await done.future;
      expect(n, 20000000);
    });

    test('httpStream: cancelling the subscription aborts the transfer',
        () async {
      final s = await pool.httpStream(server.url('/bin/50000000'),
          options: const HttpOptions(chunkSize: 16384));
      final first = await s.body.first; // cancels after one chunk
      expect(first, pattern(0, first.length));
      expect(await s.done.timeout(const Duration(seconds: 5)),
          isA<PorterHttpResponse>());
    });

    test('httpStream: a CancelToken ends the body with an error', () async {
      final token = PorterCancelToken();
      final s = await pool.httpStream(server.url('/bin/50000000'),
          options: const HttpOptions(chunkSize: 16384), cancel: token);
      var got = 0;
      final f = s.body.forEach((c) {
        if (++got == 3) token.cancel();
      });
      await expectLater(f, throwsA(isA<PorterCancelledException>()));
    });

    test('httpStream: a stream dropped unread is aborted, done has its head',
        () async {
      final t = await pool.httpStream(server.url('/bin/50000000'));
      t.cancel();
      // The real status, not a made-up 0.
      expect((await t.done.timeout(const Duration(seconds: 5))).status, 200);
      expect(await settledTransfers(), 0);
    });
  });

  group('streamed request bodies', () {
    test('sync: write piece by piece, finish, read the answer', () {
      final body = pattern(0, 3000000);
      for (final size in [null, body.length]) {
        final up = porter.httpUpload('PUT', server.url('/digest'),
            bodySize: size, headers: {'X-Test': 'up'});
        for (var at = 0; at < body.length; at += 700000) {
          final end = at + 700000 < body.length ? at + 700000 : body.length;
          expect(up.write(Uint8List.sublistView(body, at, end), 5000), isTrue);
        }
        final st = up.finish(5000);
        expect(up.isClosed, isTrue);
        try {
          expect(st.response.status, 200);
          final text = String.fromCharCodes(st.read(5000)!);
          expect(text, startsWith('${body.length} '));
          expect(text,
              endsWith(size == null ? ' chunked pattern' : ' length pattern'));
        } finally {
          st.close();
        }
      }
      expect(
          () => porter.httpUpload('POST', server.url('/digest'),
              headers: {'Content-Length': '3'}),
          throwsArgumentError);
      expect(() => porter.httpUpload('HEAD', server.url('/digest')),
          throwsArgumentError);
    });

    test('pool: a body Stream of any size, pulled as porterd takes it',
        () async {
      const total = 20 << 20;
      var produced = 0;
      // Uneven pieces, made only when asked for (an async* generator
      // runs only while its listener is not paused).
      Stream<List<int>> body() async* {
        var k = 0;
        while (produced < total) {
          final n = [1, 7, 65536, 300000, 1 << 20][k++ % 5];
          final m = produced + n > total ? total - produced : n;
          yield pattern(produced, m);
          produced += m;
        }
      }

      final s = await pool.httpUpload('POST', server.url('/digest'), body());
      final text = String.fromCharCodes(
          (await s.body.toList()).expand((c) => c).toList());
      expect(text, startsWith('$total '));
      expect(text, endsWith(' chunked pattern'));
      expect(produced, total);
      expect(pool.openStreams, 0);
    });

    test('pool: a server that answers early gets no more of the body',
        () async {
      var produced = 0;
      var cancelled = false;
      final ctl = StreamController<List<int>>();
      ctl
        ..onListen = () {}
        ..onCancel = () => cancelled = true;
      // Produces 64 KiB whenever the listener is not paused, forever.
      Future<void> produce() async {
        while (!cancelled && produced < (1 << 30)) {
          if (!ctl.isPaused) {
            ctl.add(pattern(produced, 65536));
            produced += 65536;
          }
          await Future<void>.delayed(Duration.zero);
        }
      }

      final running = produce();
      final s = await pool.httpUpload('POST', server.url('/early/413'),
          ctl.stream,
          timeout: const Duration(seconds: 10));
      expect(s.status, 413);
      expect(String.fromCharCodes(await s.body.expand((c) => c).toList()),
          'early');
      await running;
      expect(cancelled, isTrue, reason: 'the body subscription is cancelled');
      // Far less than the gigabyte on offer: porterd stopped taking it.
      expect(produced, lessThan(256 << 20));
      expect(pool.openStreams, 0);
    });

    test('pool: package:http StreamedRequest and small bodies', () async {
      final client = PorterHttpClient(pool);
      try {
        final big = http.StreamedRequest('POST', server.url('/digest'));
        for (var at = 0; at < 5000000; at += 100000) {
          big.sink.add(pattern(at, 100000));
        }
        unawaited(big.sink.close());
        final r = await http.Response.fromStream(await client.send(big));
        expect(r.statusCode, 200);
        expect(r.body, startsWith('5000000 '));
        expect(r.body, endsWith(' chunked pattern'));
        // With a length, sent as Content-Length.
        final sized = http.StreamedRequest('PUT', server.url('/digest'))
          ..contentLength = 200000;
        sized.sink
          ..add(pattern(0, 150000))
          ..add(pattern(150000, 50000));
        unawaited(sized.sink.close());
        final r2 = await http.Response.fromStream(await client.send(sized));
        expect(r2.body, '200000 ${r2.body.split(' ')[1]} length pattern');
        // A short body goes in one message (still with its length).
        final small = await client.post(server.url('/digest'), body: 'hello');
        expect(small.body, startsWith('5 '));
        expect(small.body, endsWith(' length other'));
      } finally {
        client.close();
      }
      expect(pool.openStreams, 0);
    });

    test('pool: a cancel or a body error aborts the upload', () async {
      final token = PorterCancelToken();
      var listened = false;
      var cancelled = false;
      final never = StreamController<List<int>>(
          onListen: () => listened = true, onCancel: () => cancelled = true);
      final f = pool.httpUpload('POST', server.url('/digest'), never.stream,
          cancel: token);
      never.add(pattern(0, 1000));
      while (!listened) {
        await Future<void>.delayed(const Duration(milliseconds: 5));
      }
      token.cancel();
      await expectLater(f, throwsA(isA<PorterCancelledException>()));
      expect(cancelled, isTrue);

      final failing = StreamController<List<int>>();
      final g = pool.httpUpload('POST', server.url('/digest'), failing.stream);
      failing
        ..add(pattern(0, 100000))
        ..addError(StateError('the disk went away'));
      await expectLater(g, throwsA(isA<StateError>()));
      unawaited(failing.close());
      expect(await settledTransfers(), 0);
      expect(pool.openStreams, 0);
      await expectLater(
          pool.httpUpload('POST', server.url('/digest'), never.stream,
              headers: {'Transfer-Encoding': 'chunked'}),
          throwsArgumentError);
    });
  });

  group('batch', () {
    test('HTTP, file and ping members in one call', () async {
      final root = testFileRoot;
      porter.writeFile('batch.bin', Uint8List.fromList([0, 1, 2, 3, 4, 5]),
          root: root);
      final b = PorterBatch()
        ..addHttp(server.url('/echo'),
            method: 'POST', body: 'hi', headers: {'X-Test-B': '1'})
        ..addFileRead('batch.bin', root: root, offset: 2, length: 3)
        ..addHttp(server.url('/status/503'))
        ..addHttp(Uri.parse('ftp://127.0.0.1/x'))
        ..addPing(payload: Uint8List.fromList([9]));
      for (final r in [porter.batch(b), await pool.batch(b)]) {
        expect(r.members[0].http!.text, 'hi');
        expect(r.members[0].http!.header('X-Got-B'), '1');
        expect(r.members[1].data, [2, 3, 4]);
        expect(r.members[1].fileSize, 6);
        expect(r.members[2].http!.status, 503);
        expect(r.members[3].error, isA<PorterHttpException>());
        expect(r.members[4].payload, [9]);
      }
      porter.deleteFile('batch.bin', root: root);
    });

    test('FIRST: hedged requests, the fastest mirror wins', () async {
      final b = PorterBatch(BatchMode.first)
        ..addHttp(server.url('/slow/3000'))
        ..addHttp(server.url('/bin/1000'))
        ..addHttp(server.url('/hang'));
      final sw = Stopwatch()..start();
      final r = await pool.batch(b, timeout: const Duration(seconds: 10));
      expect(sw.elapsed, lessThan(const Duration(seconds: 2)));
      expect(r.winner, 1);
      expect(r.members[1].http!.body, pattern(0, 1000));
      expect(r.members[0].error, isA<PorterCancelledException>());
      expect(r.members[2].error, isA<PorterCancelledException>());
    });
  });

  test('stats show what porterd holds', () async {
    final s = await pool.stats();
    expect(s.openFds, greaterThan(0));
    expect(s.httpTransfers, 0);
    expect(s.toString(), contains('HTTP transfers'));
  });
}
