package proxy

import (
	"bytes"
	"crypto/tls"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"time"

	"github.com/jackc/pgx/v5/pgproto3"
)

// startupTimeout bounds the startup and authentication phase, like
// PostgreSQL's authentication_timeout.
const startupTimeout = 60 * time.Second

// upstreamTimeout bounds every wait for the upstream while a session is
// set up: the TCP connection, the TLS negotiation, and each answer of the
// server until the session is ready (to the startup message, to the
// client's password, to the guard's setup queries). A server that takes
// connections but does not answer them (hung, or a postmaster that has
// stopped accepting while the kernel still queues connections on its
// port) then costs the client a FATAL 08001 after this long, not a wait
// until its own connect timeout with no SQLSTATE. It is half of a common
// client connect timeout (10 s, the soak's); the time the client takes to
// answer is not counted.
const upstreamTimeout = 5 * time.Second

// clientError is an error the client should be told about in a FATAL
// ErrorResponse before its connection is closed.
type clientError struct {
	code string
	msg  string
}

func (e *clientError) Error() string { return e.msg }

// readStartup negotiates TLS and GSS encryption with the client and reads
// its StartupMessage. It returns nil params when the packet was a
// CancelRequest (already handled).
func (s *session) readStartup() (*pgproto3.StartupMessage, error) {
	for {
		body, err := readStartupPacket(s.client)
		if err != nil {
			return nil, err
		}
		code := binary.BigEndian.Uint32(body)
		switch {
		case code == cancelRequestCode:
			s.srv.handleCancel(body)
			return nil, nil
		case code == sslRequestCode:
			if err := s.negotiateTLS(); err != nil {
				return nil, err
			}
		case code == gssEncRequestCode:
			if _, err := s.client.Write([]byte{'N'}); err != nil {
				return nil, err
			}
		case code>>16 == protocolMajor3:
			msg := &pgproto3.StartupMessage{}
			if err := msg.Decode(body); err != nil {
				return nil, &clientError{codeProtocolViolation, "pgveil: " + err.Error()}
			}
			return msg, nil
		default:
			return nil, &clientError{codeFeatureNotSupport, fmt.Sprintf(
				"unsupported frontend protocol %d.%d: server supports 3.0 to 3.2", code>>16, code&0xffff)}
		}
	}
}

// negotiateTLS answers an SSLRequest: 'S' and a TLS handshake when the
// proxy has a certificate, else 'N'.
func (s *session) negotiateTLS() error {
	cfg := s.opts.ClientTLS
	if _, isTLS := s.client.(*tls.Conn); cfg == nil || isTLS {
		_, err := s.client.Write([]byte{'N'})
		return err
	}
	if _, err := s.client.Write([]byte{'S'}); err != nil {
		return err
	}
	tc := tls.Server(s.client, cfg)
	if err := tc.Handshake(); err != nil {
		return fmt.Errorf("TLS handshake: %w", err)
	}
	s.client = tc
	return nil
}

// dialUpstream connects to the server, with TLS when configured.
func (s *session) dialUpstream() (net.Conn, error) {
	addr := s.opts.Upstream
	c, err := net.DialTimeout("tcp", addr, upstreamTimeout)
	if err != nil {
		return nil, &clientError{codeCannotConnect, fmt.Sprintf("pgveil: could not connect to upstream %s: %v", addr, err)}
	}
	if tc, ok := c.(*net.TCPConn); ok {
		tc.SetNoDelay(true)
	}
	if s.opts.UpstreamTLS == nil {
		return c, nil
	}
	tc, err := upstreamTLS(c, s.opts.UpstreamTLS, s.opts.UpstreamTLSRequired)
	if err != nil {
		c.Close()
		return nil, &clientError{codeCannotConnect, fmt.Sprintf("pgveil: upstream %s: %v", addr, err)}
	}
	return tc, nil
}

// upstreamTLS sends SSLRequest and wraps c in TLS when the server agrees.
func upstreamTLS(c net.Conn, cfg *tls.Config, required bool) (net.Conn, error) {
	c.SetDeadline(time.Now().Add(upstreamTimeout))
	defer c.SetDeadline(time.Time{})
	req := binary.BigEndian.AppendUint32(nil, 8)
	req = binary.BigEndian.AppendUint32(req, sslRequestCode)
	if err := writeAll(c, req); err != nil {
		return nil, err
	}
	var answer [1]byte
	if _, err := c.Read(answer[:]); err != nil {
		return nil, err
	}
	switch answer[0] {
	case 'S':
		tc := tls.Client(c, cfg)
		if err := tc.Handshake(); err != nil {
			return nil, fmt.Errorf("TLS handshake: %w", err)
		}
		return tc, nil
	case 'N':
		if required {
			return nil, errors.New("server does not support TLS (upstream_tls requires it)")
		}
		return c, nil
	}
	return nil, fmt.Errorf("unexpected answer %q to SSLRequest", answer[0])
}

// authenticate forwards the startup message and relays the authentication
// exchange until the server's first ReadyForQuery. The server does all
// authentication; the proxy only takes SCRAM-SHA-256-PLUS out of the
// offer (channel binding cannot cross a proxy that terminates TLS) and
// replaces the secret in BackendKeyData with one of its own.
func (s *session) authenticate(startup *pgproto3.StartupMessage) error {
	out, err := startup.Encode(nil)
	if err != nil {
		return &clientError{codeProtocolViolation, "pgveil: " + err.Error()}
	}
	if err := writeAll(s.upstream, out); err != nil {
		return s.upstreamLost(err)
	}
	for {
		msg, err := s.fromUpstream()
		if err != nil {
			return err
		}
		done, err := s.authMessage(msg)
		if err != nil || done {
			return err
		}
	}
}

// authMessage handles one server message of the authentication phase.
func (s *session) authMessage(msg []byte) (done bool, err error) {
	var out []byte
	switch msg[0] {
	case 'R':
		out, err = s.authRequest(msg)
	case 'K':
		s.upstreamKey = bytes.Clone(msg[headerLen:])
		s.key, err = s.srv.cancels.issue(upstreamTarget{addr: s.opts.Upstream, key: s.upstreamKey})
		if err != nil {
			return false, &clientError{codeProtocolViolation, fmt.Sprintf("pgveil: upstream %s: %v", s.opts.Upstream, err)}
		}
		s.keyIssued = true
		out = s.key.backendKeyData(nil)
	case 'E':
		// The server's own error (wrong password, no such database...):
		// the client gets it verbatim, then the connection ends.
		writeAll(s.client, msg)
		return false, errAuthFailed
	default:
		out = msg
	}
	if err != nil {
		return false, err
	}
	if msg[0] == 'Z' { // held back until the session's policy is ready
		s.firstReady = bytes.Clone(msg)
		return true, nil
	}
	if err := writeAll(s.client, out); err != nil {
		return false, err
	}
	return false, nil
}

var errAuthFailed = errors.New("authentication failed")

// authRequest forwards an authentication request and, when it asks the
// client for something, relays the client's answer.
func (s *session) authRequest(msg []byte) ([]byte, error) {
	if len(msg) < headerLen+4 {
		return nil, errors.New("malformed authentication request from server")
	}
	code := binary.BigEndian.Uint32(msg[headerLen:])
	if code == 10 { // AuthenticationSASL: drop the -PLUS mechanisms
		msg = withoutChannelBinding(msg)
	}
	if err := writeAll(s.client, msg); err != nil {
		return nil, err
	}
	switch code {
	case 3, 5, 7, 8, 9, 10, 11: // cleartext, md5, GSS, GSS continue, SSPI, SASL, SASL continue
		reply, err := s.fromClient.next()
		if err != nil {
			return nil, err
		}
		if reply[0] != 'p' {
			return nil, &clientError{codeProtocolViolation, fmt.Sprintf("expected password response, got message type %q", reply[0])}
		}
		if err := writeAll(s.upstream, reply); err != nil {
			return nil, s.upstreamLost(err)
		}
	}
	return nil, nil
}

// withoutChannelBinding rewrites an AuthenticationSASL message so that it
// offers no mechanism ending in -PLUS.
func withoutChannelBinding(msg []byte) []byte {
	var sasl pgproto3.AuthenticationSASL
	if err := sasl.Decode(msg[headerLen:]); err != nil {
		return msg
	}
	kept := sasl.AuthMechanisms[:0]
	for _, m := range sasl.AuthMechanisms {
		if !bytes.HasSuffix([]byte(m), []byte("-PLUS")) {
			kept = append(kept, m)
		}
	}
	sasl.AuthMechanisms = kept
	out, err := sasl.Encode(nil)
	if err != nil {
		return msg
	}
	return out
}

// fromUpstream reads the server's next message while the session is set
// up, waiting at most upstreamTimeout for it. The returned slice is valid
// until the next read of the server pump.
func (s *session) fromUpstream() ([]byte, error) {
	s.upstream.SetReadDeadline(time.Now().Add(upstreamTimeout))
	msg, err := s.fromServer.next()
	if err != nil {
		return nil, s.upstreamLost(err)
	}
	return msg, nil
}

// upstreamLost wraps a failure of the upstream connection for the client:
// 08001 when the server did not answer in time (the session was never
// established), else 08006.
func (s *session) upstreamLost(err error) error {
	var ce *clientError
	if errors.As(err, &ce) {
		return err
	}
	s.srv.metrics.Errors.WithLabelValues("upstream").Inc()
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return &clientError{codeCannotConnect, fmt.Sprintf("pgveil: upstream %s did not answer within %s", s.opts.Upstream, upstreamTimeout)}
	}
	return &clientError{codeConnectionFailure, fmt.Sprintf("pgveil: lost connection to upstream %s: %v", s.opts.Upstream, err)}
}

// openPolicy asks the guard whether the session is masked, then lets the
// client go on with the ReadyForQuery held back from authentication.
func (s *session) openPolicy() error {
	if g := s.opts.Guard; g != nil {
		info := SessionInfo{User: s.user, Database: s.database, Params: s.params}
		p, err := g.Open(info, s.execUpstream)
		if err != nil {
			return &clientError{codeOf(err), err.Error()}
		}
		if p != nil {
			s.masking = newMasking(s, p)
		}
	}
	return writeAll(s.client, s.firstReady)
}

// execUpstream runs one simple query on the session's upstream connection
// while the client waits, and returns its rows as text.
func (s *session) execUpstream(sql string) ([][]string, error) {
	if err := writeAll(s.upstream, appendQuery(nil, sql)); err != nil {
		return nil, s.upstreamLost(err)
	}
	var rows [][]string
	var failure error
	for {
		msg, err := s.fromUpstream()
		if err != nil {
			return nil, err
		}
		switch msg[0] {
		case 'D':
			row, err := textRow(msg)
			if err != nil {
				return nil, err
			}
			rows = append(rows, row)
		case 'E':
			var e pgproto3.ErrorResponse
			e.Decode(msg[headerLen:])
			failure = fmt.Errorf("pgveil: session setup query failed: %s (SQLSTATE %s)", e.Message, e.Code)
		case 'Z':
			return rows, failure
		}
	}
}

// textRow decodes a DataRow's values as strings (NULL as "").
func textRow(msg []byte) ([]string, error) {
	var d pgproto3.DataRow
	if err := d.Decode(msg[headerLen:]); err != nil {
		return nil, &protocolError{err}
	}
	row := make([]string, len(d.Values))
	for i, v := range d.Values {
		row[i] = string(v)
	}
	return row, nil
}
