package proxy

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"io"

	"github.com/jackc/pgx/v5/pgproto3"
)

// Special codes a client may send in place of a protocol version in its
// first packet (src/include/libpq/pqcomm.h).
const (
	sslRequestCode    = 80877103
	gssEncRequestCode = 80877104
	cancelRequestCode = 80877102
	protocolMajor3    = 3
)

// maxStartupPacket is PostgreSQL's MAX_STARTUP_PACKET_LENGTH.
const maxStartupPacket = 10000

// headerLen is the size of a regular message header: type byte + int32 length.
const headerLen = 5

// readStartupPacket reads one untyped startup-phase packet (SSLRequest,
// GSSENCRequest, CancelRequest or StartupMessage) and returns its body
// after the length word. The body is freshly allocated.
func readStartupPacket(r io.Reader) ([]byte, error) {
	var hdr [4]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return nil, err
	}
	n := int(binary.BigEndian.Uint32(hdr[:]))
	if n < 8 || n > maxStartupPacket {
		return nil, fmt.Errorf("invalid startup packet length %d", n)
	}
	body := make([]byte, n-4)
	if _, err := io.ReadFull(r, body); err != nil {
		return nil, err
	}
	return body, nil
}

// messageLen validates the length word of a regular message header and
// returns the total size of the message including its type byte.
func messageLen(hdr []byte, max int64) (int, error) {
	n := int64(binary.BigEndian.Uint32(hdr[1:5]))
	if n < 4 {
		return 0, &protocolError{fmt.Errorf("invalid message length %d for message type %q", n, hdr[0])}
	}
	if n > max {
		return 0, &protocolError{fmt.Errorf("message of type %q is %d bytes, over the limit of %d (max_message_size)", hdr[0], n, max)}
	}
	return int(n) + 1, nil
}

// appendError appends an ErrorResponse to dst.
func appendError(dst []byte, severity, code, msg string) []byte {
	e := pgproto3.ErrorResponse{Severity: severity, SeverityUnlocalized: severity, Code: code, Message: msg}
	out, err := e.Encode(dst)
	if err != nil { // only on over-long fields; fall back to a short message
		out, _ = (&pgproto3.ErrorResponse{Severity: severity, Code: code, Message: "pgveil: error"}).Encode(dst)
	}
	return out
}

// fatalMessage renders an error as a FATAL ErrorResponse.
func fatalMessage(code, msg string) []byte {
	return appendError(nil, "FATAL", code, msg)
}

// SQLSTATE codes the proxy itself uses.
const (
	codeConnectionFailure = "08006"
	codeCannotConnect     = "08001"
	codeProtocolViolation = "08P01"
	codeAdminShutdown     = "57P01"
	codeFeatureNotSupport = "0A000"
)

// protocolError is a malformed or oversized message: the peer that sent it
// is at fault, and only its session ends.
type protocolError struct{ err error }

func (e *protocolError) Error() string { return e.err.Error() }
func (e *protocolError) Unwrap() error { return e.err }

// errorSeverity returns the non-localized severity of an ErrorResponse or
// NoticeResponse message (header included), or "" when it has none.
func errorSeverity(msg []byte) string {
	var sev string
	for b := msg[headerLen:]; len(b) > 1; {
		end := bytes.IndexByte(b[1:], 0)
		if end < 0 {
			break
		}
		val := string(b[1 : 1+end])
		switch b[0] {
		case 'V':
			return val
		case 'S':
			sev = val
		}
		b = b[2+end:]
	}
	return sev
}
