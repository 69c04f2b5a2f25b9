// Tests of the file API against a real porterd (no database needed); see
// README.md ("Running the tests").
import 'dart:async';
import 'dart:io' show Link;
import 'dart:typed_data';

import 'package:porter/porter.dart';
import 'package:test/test.dart';

import 'support/daemon.dart';

late TestDaemon daemon;
late Porter porter;
late PorterPool pool;
final String? root = testFileRoot;

void main() {
  setUpAll(() async {
    daemon = await TestDaemon.start();
    porter = Porter();
    pool = await PorterPool.spawn(size: 2, reset: false);
  });

  tearDownAll(() async {
    await pool.close();
    porter.disconnectThread();
    await daemon.stop();
  });

  group('files', () {
    final data = Uint8List.fromList(
        [for (var i = 0; i < 70000; i++) i % 7 == 0 ? 0 : i & 0xff]);

    test('sync write, read, stat, list and delete', () {
      porter.writeFile('a.bin', data, root: root);
      expect(porter.readFile('a.bin', root: root), data);
      expect(porter.readFile('a.bin', root: root, offset: 10, length: 5),
          data.sublist(10, 15));
      final info = porter.statFile('a.bin', root: root);
      expect(info.type, FileType.regular);
      expect(info.size, data.length);
      expect(porter.listDir('', root: root).map((e) => e.name), contains('a.bin'));
      final chunks = <Uint8List>[];
      porter.readFileEach('a.bin', (c) {
        chunks.add(c);
        return true;
      }, root: root);
      expect(chunks.length, greaterThan(1));
      expect(chunks.expand((c) => c).toList(), data);
      porter.writeFile('a.bin', Uint8List.fromList([0, 0]),
          root: root, flags: FileWriteFlags.atomic);
      expect(porter.readFile('a.bin', root: root), [0, 0]);
      porter.deleteFile('a.bin', root: root);
      expect(
          () => porter.readFile('a.bin', root: root),
          throwsA(isA<PorterFileException>()
              .having((e) => e.kind, 'kind', FileErrorKind.notFound)
              .having((e) => e.path, 'path', 'a.bin')));
      expect(
          () => porter.readFile('../outside', root: root),
          throwsA(isA<PorterFileException>()
              .having((e) => e.kind, 'kind', FileErrorKind.escape)));
      porter.writeFile('x', data,
          root: root, flags: FileWriteFlags.create | FileWriteFlags.exclusive);
      expect(
          () => porter.writeFile('x', data,
              root: root, flags: FileWriteFlags.create | FileWriteFlags.exclusive),
          throwsA(isA<PorterFileException>()
              .having((e) => e.kind, 'kind', FileErrorKind.exists)));
      porter.deleteFile('x', root: root);
    });

    test('a read of 0 bytes is empty, a negative range is refused', () async {
      porter.writeFile('z.bin', data, root: root);
      // porter.h reads to the end for a length of 0; a Dart caller asking
      // for 0 bytes (size - offset at the end) wants none.
      expect(porter.readFile('z.bin', root: root, length: 0), isEmpty);
      expect(await pool.readFile('z.bin', root: root, length: 0), isEmpty);
      expect(porter.readFile('z.bin', root: root, offset: data.length), isEmpty);
      // A negative int would reach C as a uint64_t near 2^64.
      expect(() => porter.readFile('z.bin', root: root, offset: -1),
          throwsRangeError);
      expect(() => porter.readFile('z.bin', root: root, length: -1),
          throwsRangeError);
      await expectLater(
          pool.readFile('z.bin', root: root, offset: -1), throwsRangeError);
      expect(() => porter.openFileReader('z.bin', root: root, length: 0),
          throwsRangeError);
      await expectLater(
          pool.readFileStream('z.bin', root: root, length: 0).toList(),
          throwsRangeError);
      porter.deleteFile('z.bin', root: root);
    });

    test('pool: concurrent writes and reads, errors cross intact', () async {
      await Future.wait([
        for (var i = 0; i < 16; i++)
          pool.writeFile('p$i.bin', Uint8List.fromList([0, i, 0]), root: root)
      ]);
      final back = await Future.wait(
          [for (var i = 0; i < 16; i++) pool.readFile('p$i.bin', root: root)]);
      for (var i = 0; i < 16; i++) {
        expect(back[i], [0, i, 0]);
      }
      expect((await pool.statFile('p3.bin', root: root)).size, 3);
      expect((await pool.listDir('', root: root)).length, greaterThanOrEqualTo(16));
      await Future.wait(
          [for (var i = 0; i < 16; i++) pool.deleteFile('p$i.bin', root: root)]);
      await expectLater(
          pool.readFile('p0.bin', root: root),
          throwsA(isA<PorterFileException>()
              .having((e) => e.kind, 'kind', FileErrorKind.notFound)));
    });

    test('small reads of a cached file count in PorterStats.fileFast', () {
      // porterd answers them on its worker loop (file-loop-fast-path, on
      // by default; a kernel before 5.12 has no RESOLVE_CACHED for it).
      final small = Uint8List.fromList(List.filled(4096, 7));
      porter.writeFile('fast.txt', small, root: root);
      porter.readFile('fast.txt', root: root); // warms the path
      final before = porter.stats().fileFast;
      for (var i = 0; i < 20; i++) {
        expect(porter.readFile('fast.txt', root: root), small);
      }
      // As tests/integration/test_files_fast.c: the bound leaves room for
      // a dentry the kernel dropped in between.
      expect(porter.stats().fileFast - before, greaterThanOrEqualTo(10));
      porter.deleteFile('fast.txt', root: root);
    });

    test('reads into a PorterBuffer, sync and through the pool', () async {
      final data = Uint8List.fromList([for (var i = 0; i < 300000; i++) i % 251]);
      porter.writeFile('into.bin', data, root: root);
      final buf = PorterBuffer(200000);
      expect(buf.capacity, 200000);
      // A whole buffer's worth, then the rest of the file (fewer bytes at
      // its end), then nothing past it.
      expect(porter.readFileInto('into.bin', buf, root: root), 200000);
      expect(buf.view(200000), data.sublist(0, 200000));
      expect(porter.readFileInto('into.bin', buf, root: root, offset: 200000),
          100000);
      expect(buf.view(100000), data.sublist(200000));
      expect(porter.readFileInto('into.bin', buf, root: root, offset: 300000), 0);
      // length bounds it below the capacity; 0 reads nothing.
      expect(porter.readFileInto('into.bin', buf, root: root, offset: 7, length: 5),
          5);
      expect(buf.view(5), data.sublist(7, 12));
      expect(porter.readFileInto('into.bin', buf, root: root, length: 0), 0);
      // The same buffer through the pool's workers: no copy, the same bytes.
      buf.bytes.fillRange(0, buf.capacity, 0);
      expect(await pool.readFileInto('into.bin', buf, root: root, offset: 1000),
          200000);
      expect(buf.view(200000), data.sublist(1000, 201000));
      // Errors are the file's, as for readFile.
      expect(
          () => porter.readFileInto('nope.bin', buf, root: root),
          throwsA(isA<PorterFileException>()
              .having((e) => e.kind, 'kind', FileErrorKind.notFound)));
      await expectLater(
          pool.readFileInto('../x', buf, root: root),
          throwsA(isA<PorterFileException>()
              .having((e) => e.kind, 'kind', FileErrorKind.escape)));
      expect(() => porter.readFileInto('into.bin', buf, root: root, offset: -1),
          throwsA(isA<RangeError>()));
      expect(() => PorterBuffer(0), throwsA(isA<RangeError>()));
      porter.deleteFile('into.bin', root: root);
    });

    test('a name holding NUL is refused, never cut at it', () async {
      // C would see 'nul.txt' alone and delete it (or rename onto 'x').
      porter.writeFile('nul.txt', Uint8List.fromList([1]), root: root);
      final refused = throwsA(isA<ArgumentError>());
      expect(() => porter.deleteFile('nul.txt\u0000.bak', root: root), refused);
      expect(() => porter.renameFile('nul.txt', 'x\u0000y', root: root),
          refused);
      expect(() => porter.readFile('nul.txt', root: 'r\u0000'), refused);
      // Through the pool the worker's ArgumentError reaches the caller as
      // one (not as an internal failure of the pool).
      await expectLater(
          pool.deleteFile('nul.txt\u0000.bak', root: root), refused);
      await expectLater(
          pool.readFileStream('nul.txt\u0000', root: root).first, refused);
      expect(porter.readFile('nul.txt', root: root), [1]);
      porter.deleteFile('nul.txt', root: root);
    });

    test('a message cut inside a character is still a PorterFileException',
        () async {
      // "no file root named 'éé...'" is cut at libporter's 511 bytes in
      // the middle of an é: the message must be read leniently, or the
      // caller gets a FormatException instead of the file error.
      final name = 'é' * 300;
      final noRoot = throwsA(isA<PorterFileException>()
          .having((e) => e.kind, 'kind', FileErrorKind.noRoot)
          .having((e) => e.message, 'message', startsWith('no file root named')));
      expect(() => porter.readFile('x', root: name), noRoot);
      await expectLater(pool.readFile('x', root: name), noRoot);
    });
  });

  test('mkdir, rename, copy and lstat, sync and through the pool', () async {
    porter.createDirectory('d/e/f', root: root, recursive: true);
    expect(porter.statFile('d/e/f', root: root).type, FileType.directory);
    // recursive: an existing directory is fine; without it, it is not.
    porter.createDirectory('d/e', root: root, recursive: true);
    expect(
        () => porter.createDirectory('d/e', root: root),
        throwsA(isA<PorterFileException>()
            .having((e) => e.kind, 'kind', FileErrorKind.exists)));
    expect(
        () => porter.createDirectory('../up', root: root, recursive: true),
        throwsA(isA<PorterFileException>()
            .having((e) => e.kind, 'kind', FileErrorKind.escape)));
    final data = Uint8List.fromList([0, 1, 0, 2, 0]);
    porter.writeFile('d/a.bin', data, root: root);
    expect(porter.copyFile('d/a.bin', 'd/e/b.bin', root: root), data.length);
    expect(porter.readFile('d/e/b.bin', root: root), data);
    expect(
        () => porter.copyFile('d/a.bin', 'd/e/b.bin',
            root: root, replace: false),
        throwsA(isA<PorterFileException>()
            .having((e) => e.kind, 'kind', FileErrorKind.exists)
            .having((e) => e.path, 'path', 'd/a.bin')));
    expect(
        () => porter.renameFile('d/a.bin', 'd/e/b.bin',
            root: root, replace: false),
        throwsA(isA<PorterFileException>()
            .having((e) => e.kind, 'kind', FileErrorKind.exists)));
    porter.renameFile('d/a.bin', 'd/e/f/c.bin', root: root);
    expect(porter.readFile('d/e/f/c.bin', root: root), data);
    expect(
        () => porter.statFile('d/a.bin', root: root),
        throwsA(isA<PorterFileException>()
            .having((e) => e.kind, 'kind', FileErrorKind.notFound)));
    expect(
        () => porter.renameFile('d/e/f/c.bin', '../c.bin', root: root),
        throwsA(isA<PorterFileException>()
            .having((e) => e.kind, 'kind', FileErrorKind.escape)));

    // The same through the pool's workers.
    await pool.createDirectory('q/r', root: root, recursive: true);
    expect(await pool.copyFile('d/e/b.bin', 'q/r/b.bin', root: root),
        data.length);
    await pool.renameFile('q/r/b.bin', 'q/b.bin', root: root);
    expect(await pool.readFile('q/b.bin', root: root), data);
    await expectLater(
        pool.renameFile('q/b.bin', 'd/e/b.bin', root: root, replace: false),
        throwsA(isA<PorterFileException>()
            .having((e) => e.kind, 'kind', FileErrorKind.exists)));
    expect((await pool.statFile('q/r', root: root)).type, FileType.directory);

    // A symlink inside the root: stat follows it, lstat does not.
    // (Only with a daemon of the test's own, whose root is a known path.)
    final dir = daemon.fileRoot;
    if (dir != null) {
      Link('$dir/q/link.bin').createSync('b.bin');
      expect(porter.statFile('q/link.bin', root: root).type, FileType.regular);
      expect(porter.statFile('q/link.bin', root: root, followLinks: false).type,
          FileType.symlink);
      expect(
          (await pool.statFile('q/link.bin', root: root, followLinks: false))
              .type,
          FileType.symlink);
      porter.deleteFile('q/link.bin', root: root);
    }
    for (final f in ['d/e/b.bin', 'd/e/f/c.bin', 'q/b.bin']) {
      porter.deleteFile(f, root: root);
    }
    for (final d in ['d/e/f', 'd/e', 'd', 'q/r', 'q']) {
      porter.deleteFile(d, root: root, directory: true);
    }
  });

  group('watch', () {
    /// Waits until [cond] holds (10 s at most).
    Future<void> until(bool Function() cond) async {
      final end = DateTime.now().add(const Duration(seconds: 10));
      while (!cond()) {
        if (DateTime.now().isAfter(end)) fail('timed out');
        await Future<void>.delayed(const Duration(milliseconds: 20));
      }
    }

    int fileStreams() =>
        porter.stats().uids.fold(0, (n, u) => n + u.fileStreams);

    test('sync: batches of typed events, the end with the directory', () {
      porter.createDirectory('ws', root: root);
      final w = porter.watchFile('ws', root: root);
      try {
        expect(w.isDirectory, isTrue);
        expect(w.read(100).events, isEmpty); // quiet: an empty batch
        porter.writeFile('ws/a.txt', Uint8List.fromList([1]), root: root);
        porter.renameFile('ws/a.txt', 'ws/b.txt', root: root);
        porter.deleteFile('ws/b.txt', root: root);
        final seen = <PorterFileEvent>[];
        while (!seen.contains(
            const PorterFileEvent(FileEventKind.deleted, 'ws/b.txt'))) {
          seen.addAll(w.read(2000).events);
        }
        expect(seen, contains(const PorterFileEvent(FileEventKind.created, 'ws/a.txt')));
        expect(
            seen.indexOf(const PorterFileEvent(
                FileEventKind.moved, 'ws/a.txt', 'ws/b.txt')),
            lessThan(seen.indexOf(
                const PorterFileEvent(FileEventKind.deleted, 'ws/b.txt'))));
        porter.deleteFile('ws', root: root, directory: true);
        var ended = false;
        for (var i = 0; i < 50 && !ended; i++) {
          ended = w.read(200).ended;
        }
        expect(ended, isTrue);
      } finally {
        w.close();
      }
      expect(
          () => porter.watchFile('../up', root: root),
          throwsA(isA<PorterFileException>()
              .having((e) => e.kind, 'kind', FileErrorKind.escape)));
    });

    test('pool: a Stream of events; cancelling it closes the watch',
        () async {
      await pool.createDirectory('wp', root: root);
      final base = fileStreams();
      final events = <PorterFileEvent>[];
      final sub = pool
          .watch('wp', root: root, pollInterval: const Duration(milliseconds: 50))
          .listen(events.add);
      // The watch is live once a change shows up.
      for (var k = 0; events.isEmpty; k++) {
        await pool.writeFile('wp/probe$k', Uint8List(1), root: root);
        await Future<void>.delayed(const Duration(milliseconds: 100));
      }
      expect(fileStreams(), base + 1);
      await pool.writeFile('wp/a.txt', Uint8List.fromList([1]), root: root);
      await pool.renameFile('wp/a.txt', 'wp/b.txt', root: root);
      await pool.deleteFile('wp/b.txt', root: root);
      const gone = PorterFileEvent(FileEventKind.deleted, 'wp/b.txt');
      await until(() => events.contains(gone));
      expect(events,
          contains(const PorterFileEvent(FileEventKind.created, 'wp/a.txt')));
      expect(
          events.indexOf(const PorterFileEvent(
              FileEventKind.moved, 'wp/a.txt', 'wp/b.txt')),
          lessThan(events.indexOf(gone)));
      // Quiet: the polls hold no worker, so other calls run at once.
      final sw = Stopwatch()..start();
      await Future.wait([for (var i = 0; i < 8; i++) pool.ping()]);
      expect(sw.elapsed, lessThan(const Duration(seconds: 2)));
      await sub.cancel();
      await until(() => fileStreams() == base);
      expect(pool.openStreams, 0);
      for (final e in await pool.listDir('wp', root: root)) {
        await pool.deleteFile('wp/${e.name}', root: root);
      }

      // The watched directory going away ends the stream.
      final ended = Completer<void>();
      final more = <PorterFileEvent>[];
      pool
          .watch('wp', root: root, pollInterval: const Duration(milliseconds: 50))
          .listen(more.add, onDone: ended.complete);
      for (var k = 0; more.isEmpty; k++) {
        await pool.writeFile('wp/again$k', Uint8List(1), root: root);
        await Future<void>.delayed(const Duration(milliseconds: 100));
      }
      for (final e in await pool.listDir('wp', root: root)) {
        await pool.deleteFile('wp/${e.name}', root: root);
      }
      await pool.deleteFile('wp', root: root, directory: true);
      await ended.future.timeout(const Duration(seconds: 10));
      await until(() => fileStreams() == base);
      await expectLater(
          pool.watch('nope', root: root).first,
          throwsA(isA<PorterFileException>()
              .having((e) => e.kind, 'kind', FileErrorKind.notFound)));
    });
  });

  test('pool: a file as a stream; cancelling it closes the reader', () async {
    final data = Uint8List.fromList([for (var i = 0; i < 3000000; i++) i % 253]);
    await pool.writeFile('big.bin', data, root: root);
    final b = BytesBuilder(copy: false);
    await for (final c in pool.readFileStream('big.bin', root: root)) {
      b.add(c);
    }
    expect(b.takeBytes(), data);
    final first = await pool.readFileStream('big.bin', root: root).first;
    expect(first, data.sublist(0, first.length));
    expect(pool.openStreams, 0);
    await pool.deleteFile('big.bin', root: root);
  });

  test('sync: stopping a chunk loop early closes the reader', () {
    porter.writeFile('c.bin', Uint8List(3000000), root: root);
    var n = 0;
    expect(porter.readFileEach('c.bin', (c) => ++n < 2, root: root), 2);
    final rd = porter.openFileReader('c.bin', root: root);
    try {
      expect(rd.size, 3000000);
      expect(rd.read(5000), isNotNull);
    } finally {
      rd.close();
    }
    expect(rd.isClosed, isTrue);
    porter.deleteFile('c.bin', root: root);
  });
}
