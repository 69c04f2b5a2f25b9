// Finding and opening libporter.
import 'dart:ffi';
import 'dart:io';

import 'bindings.g.dart';

/// The environment variable that names the libporter file to open, e.g.
/// `/opt/porter/lib/libporter.so`. It overrides the platform name.
const String porterLibraryEnv = 'PORTER_LIBRARY';

/// The file name of libporter on this platform: `libporter.so` (Linux,
/// Android), `libporter.dylib` (macOS, iOS) or `porter.dll` (Windows).
String get porterLibraryName {
  if (Platform.isMacOS || Platform.isIOS) return 'libporter.dylib';
  if (Platform.isWindows) return 'porter.dll';
  return 'libporter.so';
}

/// Opens libporter. The first of these wins: [path] when given, the
/// [porterLibraryEnv] environment variable when set and not empty, then
/// [porterLibraryName] through the system's library search (on Linux also
/// `libporter.so.0`, the name a runtime-only install provides).
///
/// Throws an [ArgumentError] naming every place tried when none opens.
DynamicLibrary openPorterLibrary({String? path}) {
  final tried = <String>[];
  final override = path ?? Platform.environment[porterLibraryEnv];
  if (override != null && override.isNotEmpty) {
    // An explicit choice is never silently replaced by another library.
    return DynamicLibrary.open(override);
  }
  final names = [
    porterLibraryName,
    if (Platform.isLinux || Platform.isAndroid) 'libporter.so.0',
  ];
  for (final name in names) {
    try {
      return DynamicLibrary.open(name);
    } on ArgumentError catch (e) {
      tried.add('$name ($e)');
    }
  }
  throw ArgumentError('libporter not found; tried ${tried.join(', ')}. '
      'Install Porter (installed under a prefix other than /usr, such as '
      "CMake's default /usr/local, the library is found only once "
      '`sudo ldconfig` has run), or set $porterLibraryEnv to the file, or '
      'pass libraryPath.');
}

/// The bindings of one opened library, shared by everything in an isolate
/// that asked for the same path. Opening a library twice gives the same
/// native handle, so this only saves the symbol lookups.
final Map<String, PorterBindings> _bindings = {};

/// The bindings for [path] (see [openPorterLibrary]).
PorterBindings porterBindings({String? path}) {
  final key = path ?? '';
  return _bindings[key] ??= PorterBindings(openPorterLibrary(path: path));
}
