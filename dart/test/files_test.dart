// Tests of the file API against a real porterd (no database needed); see
// README.md ("Running the tests").
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
