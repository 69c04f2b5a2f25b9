// Typed exceptions for porter error codes.
import 'bindings.g.dart';
import 'db_diag.dart';
import 'files.dart';
import 'http.dart';

/// A failed porter call: [code] is one of the negative `PORTER_E_*` codes of
/// porter.h (frozen numbers), [name] its symbolic name and [message] what the
/// library or the daemon said about this failure.
class PorterException implements Exception {
  /// The negative error code, e.g. `porter_error.PORTER_E_TIMEOUT` (-4).
  final int code;

  /// The code's symbolic name, e.g. `PORTER_E_TIMEOUT`.
  final String name;

  /// A human-readable message for this failure.
  final String message;

  /// Use [PorterException.fromCode] to get the matching subclass.
  const PorterException(this.code, this.name, this.message);

  /// The most specific exception for [code].
  factory PorterException.fromCode(int code, String name, String message) {
    switch (code) {
      case porter_error.PORTER_E_TIMEOUT:
        return PorterTimeoutException(name, message);
      case porter_error.PORTER_E_UNREACHABLE:
        return PorterUnreachableException(name, message);
      case porter_error.PORTER_E_CONN_LOST:
        return PorterConnectionLostException(name, message);
      case porter_error.PORTER_E_CANCELLED:
        return PorterCancelledException(name, message);
      case porter_error.PORTER_E_BUSY:
        return PorterBusyException(name, message);
      case porter_error.PORTER_E_INVAL:
        return PorterInvalidArgumentException(name, message);
      case porter_error.PORTER_E_PROTOCOL:
        return PorterProtocolException(name, message);
      case porter_error.PORTER_E_DENIED:
        return PorterDeniedException(name, message);
      case porter_error.PORTER_E_SHUTDOWN:
        return PorterShutdownException(name, message);
      case porter_error.PORTER_E_NOMEM:
        return PorterOutOfMemoryException(name, message);
      case porter_error.PORTER_E_TOO_LARGE:
        return PorterTooLargeException(name, message);
      case porter_error.PORTER_E_UNSUPPORTED:
        return PorterUnsupportedException(name, message);
      case porter_error.PORTER_E_INTERNAL:
        return PorterInternalException(name, message);
      case porter_error.PORTER_E_NOT_FOUND:
        return PorterNotFoundException(name, message);
      case porter_error.PORTER_E_DB:
      case porter_error.PORTER_E_DB_CONNECT:
      case porter_error.PORTER_E_DB_SESSION:
      case porter_error.PORTER_E_DB_BROKEN:
        return PorterDbException(code, name, message);
      case porter_error.PORTER_E_HTTP:
      case porter_error.PORTER_E_HTTP_SCHEME:
      case porter_error.PORTER_E_HTTP_TOO_LARGE:
      case porter_error.PORTER_E_HTTP_HOST:
      case porter_error.PORTER_E_HTTP_REDIRECTS:
      case porter_error.PORTER_E_HTTP_CONNECT:
      case porter_error.PORTER_E_HTTP_TLS:
        return PorterHttpException(code, name, message);
      default:
        final kind = fileErrorKind(code);
        if (kind != null) {
          return PorterFileException(code, name, message, kind, '');
        }
        // A code this package does not know (a newer libporter's).
        return PorterException(code, name, message);
    }
  }

  @override
  String toString() => 'PorterException($name $code): $message';
}

/// The call did not finish within its timeout. The daemon is told the same
/// deadline and gives up on the work too.
class PorterTimeoutException extends PorterException {
  const PorterTimeoutException(String name, String message)
      : super(porter_error.PORTER_E_TIMEOUT, name, message);
}

/// No daemon listens on the socket (not started, wrong `PORTER_SOCKET`).
class PorterUnreachableException extends PorterException {
  const PorterUnreachableException(String name, String message)
      : super(porter_error.PORTER_E_UNREACHABLE, name, message);
}

/// The connection broke after a non-idempotent request was sent: whether it
/// took effect is unknown.
class PorterConnectionLostException extends PorterException {
  const PorterConnectionLostException(String name, String message)
      : super(porter_error.PORTER_E_CONN_LOST, name, message);
}

/// The call was cancelled (by a [PorterCancelToken] or by the daemon).
class PorterCancelledException extends PorterException {
  const PorterCancelledException(String name, String message)
      : super(porter_error.PORTER_E_CANCELLED, name, message);
}

/// The daemon refused the request: too many requests in flight.
class PorterBusyException extends PorterException {
  const PorterBusyException(String name, String message)
      : super(porter_error.PORTER_E_BUSY, name, message);
}

/// An argument was refused (by this package, libporter or the daemon).
class PorterInvalidArgumentException extends PorterException {
  const PorterInvalidArgumentException(String name, String message)
      : super(porter_error.PORTER_E_INVAL, name, message);
}

/// The daemon answered something this library does not understand.
class PorterProtocolException extends PorterException {
  const PorterProtocolException(String name, String message)
      : super(porter_error.PORTER_E_PROTOCOL, name, message);
}

/// The daemon does not serve this user.
class PorterDeniedException extends PorterException {
  const PorterDeniedException(String name, String message)
      : super(porter_error.PORTER_E_DENIED, name, message);
}

/// The daemon is shutting down.
class PorterShutdownException extends PorterException {
  const PorterShutdownException(String name, String message)
      : super(porter_error.PORTER_E_SHUTDOWN, name, message);
}

/// libporter or porterd ran out of memory.
class PorterOutOfMemoryException extends PorterException {
  const PorterOutOfMemoryException(String name, String message)
      : super(porter_error.PORTER_E_NOMEM, name, message);
}

/// A request or its answer is over a size limit: a whole query result,
/// file or directory listing over porterd's frame size (use a cursor, a
/// stream or a reader), or a request over what porterd accepts.
class PorterTooLargeException extends PorterException {
  const PorterTooLargeException(String name, String message)
      : super(porter_error.PORTER_E_TOO_LARGE, name, message);
}

/// porterd does not know the request (it is older than this libporter).
class PorterUnsupportedException extends PorterException {
  const PorterUnsupportedException(String name, String message)
      : super(porter_error.PORTER_E_UNSUPPORTED, name, message);
}

/// porterd failed internally, or a pool worker isolate died under a call.
class PorterInternalException extends PorterException {
  const PorterInternalException(String name, String message)
      : super(porter_error.PORTER_E_INTERNAL, name, message);
}

/// porterd holds no such object: a stream it reclaimed or that ended with
/// the connection that opened it, a call that already finished.
class PorterNotFoundException extends PorterException {
  const PorterNotFoundException(String name, String message)
      : super(porter_error.PORTER_E_NOT_FOUND, name, message);
}
