package protocol

// Codes of ERROR packets: libgearman's return names without their GEARMAN_ prefix, as gearmand
// sends them. One catalog for the core's handlers and the transport's framing errors.
const (
	CodeInvalidMagic     = "INVALID_MAGIC"
	CodeInvalidCommand   = "INVALID_COMMAND"
	CodeInvalidArgument  = "INVALID_ARGUMENT"
	CodeArgumentTooLarge = "ARGUMENT_TOO_LARGE"
	CodeQueueError       = "QUEUE_ERROR"
	CodeJobNotFound      = "JOB_NOT_FOUND"
	CodeUnknownOption    = "UNKNOWN_OPTION"
	CodeServerError      = "SERVER_ERROR"
	// Gear's own: a connection over the server's connection limits, closed after this packet.
	CodeConnectionLimit = "CONNECTION_LIMIT"
	// Gear's own: the access rules do not allow the request; nothing was changed.
	CodePermissionDenied = "PERMISSION_DENIED"
)
