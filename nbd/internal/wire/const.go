package wire

import "github.com/pojntfx/go-nbd/pkg/protocol"

// Handshake magics and flags.
const (
	// MagicInitPasswd is "NBDMAGIC", the first 8 bytes of the greeting.
	MagicInitPasswd = protocol.NEGOTIATION_MAGIC_OLDSTYLE
	// MagicOption is "IHAVEOPT": the greeting's second word and the magic of
	// every option request.
	MagicOption = protocol.NEGOTIATION_MAGIC_OPTION
	// MagicOptionReply starts every option reply.
	MagicOptionReply = protocol.NEGOTIATION_MAGIC_REPLY

	// FlagFixedNewstyle and FlagNoZeroes are the server's handshake flags.
	FlagFixedNewstyle = protocol.NEGOTIATION_HANDSHAKE_FLAG_FIXED_NEWSTYLE
	FlagNoZeroes      = uint16(1 << 1)

	// ClientFlagFixedNewstyle and ClientFlagNoZeroes are the client's flags.
	ClientFlagFixedNewstyle = uint32(1 << 0)
	ClientFlagNoZeroes      = uint32(1 << 1)
)

// Options (NBD_OPT_*).
const (
	OptExportName      = uint32(1)
	OptAbort           = protocol.NEGOTIATION_ID_OPTION_ABORT
	OptList            = protocol.NEGOTIATION_ID_OPTION_LIST
	OptPeekExport      = uint32(4) // withdrawn; answered ERR_UNSUP
	OptStartTLS        = uint32(5)
	OptInfo            = protocol.NEGOTIATION_ID_OPTION_INFO
	OptGo              = protocol.NEGOTIATION_ID_OPTION_GO
	OptStructuredReply = uint32(8)
	OptListMetaContext = uint32(9)
	OptSetMetaContext  = uint32(10)
	OptExtendedHeaders = uint32(11)
)

// Option reply types (NBD_REP_*). Errors have bit 31 set.
const (
	RepAck         = protocol.NEGOTIATION_TYPE_REPLY_ACK
	RepServer      = protocol.NEGOTIATION_TYPE_REPLY_SERVER
	RepInfo        = protocol.NEGOTIATION_TYPE_REPLY_INFO
	RepMetaContext = uint32(4)

	repErr              = uint32(1 << 31)
	RepErrUnsup         = protocol.NEGOTIATION_TYPE_REPLY_ERR_UNSUPPORTED
	RepErrPolicy        = repErr | 2
	RepErrInvalid       = repErr | 3
	RepErrPlatform      = repErr | 4
	RepErrTLSReqd       = repErr | 5
	RepErrUnknown       = protocol.NEGOTIATION_TYPE_REPLY_ERR_UNKNOWN
	RepErrShutdown      = repErr | 7
	RepErrBlockSizeReqd = repErr | 8
	RepErrTooBig        = repErr | 9
	RepErrExtHeaderReqd = repErr | 10
	// RepErrorBit is set in every error reply type.
	RepErrorBit = repErr
)

// Info types (NBD_INFO_*) of REP_INFO replies.
const (
	InfoExport      = protocol.NEGOTIATION_TYPE_INFO_EXPORT
	InfoName        = protocol.NEGOTIATION_TYPE_INFO_NAME
	InfoDescription = protocol.NEGOTIATION_TYPE_INFO_DESCRIPTION
	InfoBlockSize   = protocol.NEGOTIATION_TYPE_INFO_BLOCKSIZE
)

// Transmission flags, sent with the export size.
const (
	TransHasFlags           = protocol.NEGOTIATION_REPLY_FLAGS_HAS_FLAGS
	TransReadOnly           = uint16(1 << 1)
	TransSendFlush          = uint16(1 << 2)
	TransSendFUA            = uint16(1 << 3)
	TransRotational         = uint16(1 << 4)
	TransSendTrim           = uint16(1 << 5)
	TransSendWriteZeroes    = uint16(1 << 6)
	TransSendDF             = uint16(1 << 7)
	TransCanMultiConn       = protocol.NEGOTIATION_REPLY_FLAGS_CAN_MULTI_CONN
	TransSendResize         = uint16(1 << 9)
	TransSendCache          = uint16(1 << 10)
	TransSendFastZero       = uint16(1 << 11)
	TransBlockStatusPayload = uint16(1 << 12)
)

// Commands (NBD_CMD_*).
const (
	CmdRead        = protocol.TRANSMISSION_TYPE_REQUEST_READ
	CmdWrite       = protocol.TRANSMISSION_TYPE_REQUEST_WRITE
	CmdDisc        = protocol.TRANSMISSION_TYPE_REQUEST_DISC
	CmdFlush       = uint16(3)
	CmdTrim        = uint16(4)
	CmdCache       = uint16(5)
	CmdWriteZeroes = uint16(6)
	CmdBlockStatus = uint16(7)
	CmdResize      = uint16(8)
)

// Command flags (NBD_CMD_FLAG_*).
const (
	CmdFlagFUA        = uint16(1 << 0)
	CmdFlagNoHole     = uint16(1 << 1)
	CmdFlagDF         = uint16(1 << 2)
	CmdFlagReqOne     = uint16(1 << 3)
	CmdFlagFastZero   = uint16(1 << 4)
	CmdFlagPayloadLen = uint16(1 << 5)
	// CmdFlagsKnown is every flag bit the protocol defines.
	CmdFlagsKnown = CmdFlagFUA | CmdFlagNoHole | CmdFlagDF | CmdFlagReqOne | CmdFlagFastZero | CmdFlagPayloadLen
)

// Transmission magics.
const (
	MagicRequest         = protocol.TRANSMISSION_MAGIC_REQUEST
	MagicExtendedRequest = uint32(0x21e41c71)
	MagicSimpleReply     = protocol.TRANSMISSION_MAGIC_REPLY
	MagicStructuredReply = uint32(0x668e33ef)
	MagicExtendedReply   = uint32(0x6e8a278c)
)

// Structured and extended reply chunks.
const (
	ReplyFlagDone = uint16(1 << 0)

	ReplyTypeNone           = uint16(0)
	ReplyTypeOffsetData     = uint16(1)
	ReplyTypeOffsetHole     = uint16(2)
	ReplyTypeBlockStatus    = uint16(5)
	ReplyTypeBlockStatusExt = uint16(6)
	ReplyTypeError          = uint16(1<<15 | 1)
	ReplyTypeErrorOffset    = uint16(1<<15 | 2)
)

// base:allocation status flags.
const (
	StateHole = uint32(1 << 0)
	StateZero = uint32(1 << 1)
)

// Error values carried in replies. They equal the Linux errno values.
const (
	EPERM     = protocol.TRANSMISSION_ERROR_EPERM
	EIO       = uint32(5)
	ENOMEM    = uint32(12)
	EINVAL    = protocol.TRANSMISSION_ERROR_EINVAL
	ENOSPC    = uint32(28)
	EOVERFLOW = uint32(75)
	ENOTSUP   = uint32(95)
	ESHUTDOWN = uint32(108)
)

// Sizes.
const (
	GreetingSize          = 18
	OptionHeaderSize      = 16
	OptionReplyHeaderSize = 20
	RequestSize           = 28
	ExtendedRequestSize   = 32
	SimpleReplySize       = 16
	StructuredReplySize   = 20
	ExtendedReplySize     = 32
	ExportNameZeroPad     = 124
	MaxString             = 4096
	DefaultMaxPayload     = 1 << 25 // 32 MiB, what every server should accept
	DefaultPreferredBlock = 4096
	MaxMinimumBlock       = 1 << 16
	MetaContextBaseAlloc  = "base:allocation"
	MetaContextBaseNS     = "base:"
	// qemu's namespace and its dirty bitmaps' prefix (qemu docs/interop/nbd.txt).
	MetaContextQemuNS      = "qemu:"
	MetaContextDirtyBitmap = "qemu:dirty-bitmap:"
)
