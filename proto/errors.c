/*
 * errors - porter_strerror and porter_error_name, generated from the one
 * error list in porter_errors.h; shared by porterd and libporter.
 */
#include "porter_errors.h"

const char *porter_strerror(int code)
{
	switch (code) {
	case PORTER_OK:
		return "ok";
#define PORTER_X_MSG(name, value, msg)                                                             \
	case name:                                                                                 \
		return msg;
		PORTER_ERRORS(PORTER_X_MSG)
#undef PORTER_X_MSG
	default:
		return "unknown error";
	}
}

const char *porter_error_name(int code)
{
	switch (code) {
	case PORTER_OK:
		return "PORTER_OK";
#define PORTER_X_NAME(name, value, msg)                                                            \
	case name:                                                                                 \
		return #name;
		PORTER_ERRORS(PORTER_X_NAME)
#undef PORTER_X_NAME
	default:
		return "PORTER_E_UNKNOWN";
	}
}
