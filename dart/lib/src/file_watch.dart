// File watches: change events of a file or a directory inside a root
// (porter_file_watch_*), read batch by batch.
import 'dart:ffi';

import 'package:ffi/ffi.dart';

import 'bindings.g.dart';
import 'files.dart';
import 'native.dart';

/// What happened to a watched path.
enum FileEventKind {
  /// [PorterFileEvent.path] appeared.
  created,

  /// Its contents or attributes changed.
  modified,

  /// It was deleted.
  deleted,

  /// It was renamed: [PorterFileEvent.path] to [PorterFileEvent.newPath]
  /// (either null when the other side is outside the watched directory).
  moved,

  /// porterd dropped events of this watch (it bounds what it keeps for a
  /// watch that is not read): look at the watched path again.
  overflow,
}

/// One change. A plain Dart object.
final class PorterFileEvent {
  final FileEventKind kind;

  /// The path it is about, relative to the root; for [FileEventKind.moved]
  /// the old name, null when it came from outside the watched directory.
  /// Null for [FileEventKind.overflow].
  final String? path;

  /// For [FileEventKind.moved], the new name (null when it went outside
  /// the watched directory); null for the others.
  final String? newPath;

  const PorterFileEvent(this.kind, this.path, [this.newPath]);

  /// The event for porter.h's [kind] number and names ("" is none); null
  /// for a kind this package does not know (a newer porterd's).
  static PorterFileEvent? fromNative(int kind, String name, String newName) {
    final k = switch (kind) {
      porter_file_event_kind.PORTER_FILE_EVENT_CREATED => FileEventKind.created,
      porter_file_event_kind.PORTER_FILE_EVENT_MODIFIED =>
        FileEventKind.modified,
      porter_file_event_kind.PORTER_FILE_EVENT_DELETED => FileEventKind.deleted,
      porter_file_event_kind.PORTER_FILE_EVENT_MOVED => FileEventKind.moved,
      porter_file_event_kind.PORTER_FILE_EVENT_OVERFLOW =>
        FileEventKind.overflow,
      _ => null,
    };
    if (k == null) return null;
    return PorterFileEvent(k, name.isEmpty ? null : name,
        k == FileEventKind.moved && newName.isNotEmpty ? newName : null);
  }

  @override
  bool operator ==(Object other) =>
      other is PorterFileEvent &&
      other.kind == kind &&
      other.path == path &&
      other.newPath == newPath;

  @override
  int get hashCode => Object.hash(kind, path, newPath);

  @override
  String toString() => kind == FileEventKind.moved
      ? 'moved ${path ?? '(outside)'} -> ${newPath ?? '(outside)'}'
      : '${kind.name} ${path ?? ''}'.trimRight();
}

/// One read of a watch: the events in order, and whether the watch is
/// over (the watched file or directory itself was deleted or moved away;
/// no event follows).
final class FileEventBatch {
  final List<PorterFileEvent> events;
  final bool ended;
  const FileEventBatch(this.events, this.ended);
}

/// The safety net for watches dropped without [FileWatch.close]: a
/// NativeFinalizer on porter_file_watch_free, which never waits. One per
/// isolate.
NativeFinalizer? _watchFinalizer;

/// A watch of a file or a directory ([Porter.watchFile]): [read] batches
/// of events, and always [close] it (in a `finally`). Used by one thread
/// at a time; any thread may read it. porterd drops a watch when the
/// connection of the thread that opened it closes, and reclaims one not
/// read for its file-stream-idle time.
final class FileWatch implements Finalizable {
  final PorterBindings _b;
  Pointer<porter_file_watch> _ptr;
  final bool _owned;

  /// The watched path.
  final String path;

  /// Whether the watched path is a directory (its events name its
  /// entries, not their subtrees).
  final bool isDirectory;

  FileWatch._(this._b, this._ptr, this.path, this._owned)
      : isDirectory = _b.porter_file_watch_is_dir(_ptr) != 0 {
    if (_owned) {
      final f = _watchFinalizer ??=
          NativeFinalizer(_b.addresses.porter_file_watch_free.cast());
      f.attach(this, _ptr.cast(), detach: this);
    }
  }

  /// Takes ownership of native watch [p], just opened for [path].
  factory FileWatch.own(
          PorterBindings b, Pointer<porter_file_watch> p, String path) =>
      FileWatch._(b, p, path, true);

  /// Uses a watch owned elsewhere (by [address]): nothing here frees it.
  factory FileWatch.adopt(PorterBindings b, int address, String path) =>
      FileWatch._(b, Pointer<porter_file_watch>.fromAddress(address), path,
          false);

  /// Whether [close], [free] or [release] was called.
  bool get isClosed => _ptr == nullptr;

  /// Gives up ownership without freeing (another isolate will).
  int release() {
    final a = _ptr.address;
    if (_owned && _ptr != nullptr) _watchFinalizer!.detach(this);
    _ptr = nullptr;
    return a;
  }

  /// Waits up to [timeoutMs] (0: the default) for the next batch of
  /// events; an empty batch when the time passed first. An answer porterd
  /// sends late is waited for up to 1 s more, since a read that gives up
  /// drops its thread's connection, and with it a watch opened there
  /// (porter_file_watch_read in porter.h). Every event comes
  /// once, in order. After an [FileEventBatch.ended] batch, reads return
  /// empty ended batches at once. Throws [PorterFileException],
  /// [PorterTimeoutException] (also when porterd reclaimed a watch not
  /// read for its idle time), ...
  FileEventBatch read(int timeoutMs, {int callId = 0}) {
    if (_ptr == nullptr) throw StateError('file watch closed');
    final e = nativeOut(
            (out) => _b.porter_file_watch_read(
                _ptr, callId, timeoutMs, out.cast()),
            (rc) => fileError(_b, rc, path))
        .cast<porter_file_events>();
    final kind = calloc<Int>();
    final name = calloc<Pointer<Char>>();
    final newName = calloc<Pointer<Char>>();
    try {
      final n = _b.porter_file_events_count(e);
      final events = <PorterFileEvent>[];
      for (var i = 0; i < n; i++) {
        if (_b.porter_file_events_get(e, i, kind, name, newName) != 0) continue;
        final ev = PorterFileEvent.fromNative(
            kind.value, cString(name.value), cString(newName.value));
        if (ev != null) events.add(ev);
      }
      return FileEventBatch(
          List.unmodifiable(events), _b.porter_file_events_ended(e) != 0);
    } finally {
      calloc.free(kind);
      calloc.free(name);
      calloc.free(newName);
      _b.porter_file_events_free(e);
    }
  }

  /// Stops the watch in porterd, waiting up to [timeoutMs], and frees it;
  /// calling it again does nothing.
  void close([int timeoutMs = 1000]) {
    if (_ptr == nullptr) return;
    if (_owned) _watchFinalizer!.detach(this);
    _b.porter_file_watch_close(_ptr, timeoutMs);
    _ptr = nullptr;
  }

  /// Frees the watch without waiting (libporter's background thread stops
  /// it in porterd).
  void free() {
    if (_ptr == nullptr) return;
    if (_owned) _watchFinalizer!.detach(this);
    _b.porter_file_watch_free(_ptr);
    _ptr = nullptr;
  }
}
