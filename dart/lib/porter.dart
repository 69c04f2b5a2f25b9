/// Porter for Dart: asynchronous I/O through the porterd daemon, from any
/// isolate, without blocking the ones that must stay responsive.
///
/// * [Porter] makes blocking calls on the calling thread. Use it in
///   background isolates only (never on Flutter's UI isolate).
/// * [PorterPool] runs the same calls on a bounded pool of worker isolates
///   and hands back [Future]s, so the calling isolate never blocks.
/// * Failures are [PorterException]s, with subclasses for the common cases
///   ([PorterTimeoutException], [PorterUnreachableException], ...).
library porter;

export 'src/batch.dart';
export 'src/bindings.g.dart'
    show
        PorterBindings,
        porter_error,
        PORTER_PROTOCOL_VERSION,
        PORTER_VERSION_MAJOR,
        PORTER_VERSION_MINOR,
        PORTER_VERSION_PATCH,
        PORTER_VERSION_STRING;
export 'src/errors.dart';
export 'src/library.dart' show openPorterLibrary, porterLibraryEnv, porterLibraryName;
export 'src/pool.dart';
export 'src/stats.dart';
export 'src/sync.dart' show Porter, StatsSnapshot;
