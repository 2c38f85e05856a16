// Package proxy is pgveil's wire-protocol layer: it accepts PostgreSQL
// clients, connects each to its own upstream server connection, and relays
// the protocol between them. It knows messages and connections, not SQL
// meaning: what a masked session may run and how its results are masked is
// decided behind the Guard interface (guard.go), implemented by package
// masking and wired in cmd/pgveil.
//
// # Connection lifecycle
//
//	accept -> session.serve (one goroutine per session)
//	  readStartup     SSLRequest ('S' + TLS when configured, else 'N'),
//	                  GSSENCRequest ('N'), CancelRequest (forwarded, see below),
//	                  StartupMessage (protocol 3.x; others get FATAL 0A000)
//	  dialUpstream    TCP, then SSLRequest + TLS when upstream_tls asks for it;
//	                  failure -> FATAL 08001 naming the upstream
//	  authenticate    the StartupMessage is forwarded unchanged and the server
//	                  authenticates the client (trust, md5, SCRAM): the proxy
//	                  only relays. It removes SCRAM-SHA-256-PLUS from the
//	                  server's offer, since channel binding ties the exchange
//	                  to a TLS channel the proxy terminates, and it replaces
//	                  BackendKeyData with a key of its own (cancel.go).
//	  relay           until either side closes (below)
//	  close           both sockets closed, the cancel key forgotten
//
// The login role is taken from the StartupMessage only after the server has
// accepted it (ReadyForQuery), so the proxy never decides who someone is.
//
// # The relay: pumps
//
// Each direction is a pump (pump.go), modelled on PgBouncer's sbuf: one
// reused read buffer; only the 5-byte header of each message is parsed; a
// handler says per message type whether it must see the message whole.
// Messages it need not see are forwarded as bytes, never decoded and never
// buffered whole (a 1 GiB DataRow streams through a 32 KiB buffer). All that
// one read produced goes out in one write, so a pipelined batch costs one
// read and one write per direction. Lengths are distrusted: a length under 4
// or over max_message_size ends that one session with FATAL 08P01.
//
// # Two drivers for the same pumps
//
// How the pumps are driven is the main cost on the hot path. Measured on a
// 2-core machine with pgbench -S, 8 clients (see ../shared notes and the
// README's benchmark section), a goroutine per direction spends 55-80 µs of
// CPU per transaction against PgBouncer's 30-40 µs: the difference is the Go
// scheduler (futex wake-ups, thread hand-offs, sysmon), not copying. So a
// plain-TCP session is handed, after authentication, to an event loop
// (loop_linux.go): one locked OS thread per loop with its own epoll set,
// calling read, write and epoll_wait as raw system calls. The sockets are
// duplicated out of the Go runtime's poller for this. Per transaction the
// loop makes about two reads, two writes and half an epoll_wait, and the
// profile is then almost entirely those system calls, as PgBouncer's is.
// While busy, the loop waits in raw epoll_wait calls bounded to 10 ms: the
// goroutine keeps its P, so a wake-up goes straight back to the loop with no
// scheduler hand-off (blocking through the runtime instead costs a P
// hand-off by sysmon and a slow path on every wake-up: futex calls and
// thread switches, measured as 40-80% more CPU per transaction). After 50 ms
// with nothing to do, it blocks in epoll_wait through the runtime, so an
// idle proxy costs nothing. The loop never blocks anywhere else. When a write would block, reading from that direction's
// source pauses until the socket drains (backpressure).
//
// TLS sessions, and platforms without epoll, keep the goroutine driver: the
// client->server pump runs on the session goroutine, the server->client pump
// on a second one, writes to the client serialized by a mutex.
//
// Everything on a loop is touched only by the loop's thread; other
// goroutines (shutdown, forced close) post closures to it. A session that
// ends while output for its client is still queued (the client's socket
// full) hands that output to a goroutine that writes it, blocking, for up
// to 5 s and then closes the socket (linger_linux.go), so the end of a
// result and the session's FATAL are not lost.
//
// # Cancel requests
//
// Clients get a random process id and secret of the proxy's own, as long as
// the server's. A CancelRequest to the proxy is looked up and sent to the
// server with the server's key on a new connection; an unknown key is
// ignored, as PostgreSQL does (logged at debug level, never with the key).
//
// Several instances behind one TCP load balancer are peered as PgBouncer's
// are (Options.PeerID, Options.Peers): a cancel request is a new connection
// and may land on another instance than its query's. Each instance writes
// its peer id into bits 16-29 of the process ids it issues; the secret
// stays wholly random (at least 48 random bits per key). A key not found
// here whose peer id is another instance's is forwarded to that peer as it
// came, but with bit 30 set; a request with bit 30 set is never forwarded
// again, so a wrong peers list cannot make a loop. The key layout is in
// cancel.go. Forwarding is plain TCP, like the cancel to the server, and
// the requester gets no reply either way: SSL and cancel behaviour are
// those of a single instance.
//
// # Errors and shutdown
//
// A malformed message ends its session only. An upstream that goes away
// without a FATAL of its own makes the proxy send FATAL 08006. Shutdown
// stops accepting, ends idle sessions at once with FATAL 57P01, lets busy
// ones reach their next ReadyForQuery, and closes the rest when the
// shutdown timeout passes.
//
// In a masked session, the server's errors and notices of a statement the
// Policy says may quote protected values (ScrubErrors) are scrubbed: the
// client gets the severity, the SQLSTATE and a generic message. Errors of
// the SQLSTATEs in plainerrors.go, whose server texts name only catalog
// objects or quote the client's own text, keep their message, hint and
// position, unless their CONTEXT, internal query or missing position shows
// that a function, a trigger or a run-time name lookup raised them. The
// list is PostgreSQL knowledge, not SQL meaning, so it is kept here and not
// in the Policy.
//
// # Fuzzing
//
// fuzz_test.go drives the parsing above with arbitrary bytes, without
// sockets or a server: the startup phase (readStartup), client messages
// through an untouched session's pump with a screening guard, client and
// then server messages through one masked session (a policy that allows
// everything and masks every column to NULL, so the extended protocol's
// bookkeeping, rows and COPY data are all reached), and the rewriting of
// authentication messages. Each input must end in a clean error (a
// protocolError or clientError the session turns into a FATAL) or the end
// of the input, never a panic. fuzzlive_test.go sends arbitrary bytes after
// a valid startup to a proxy in front of the test cluster, as an
// unprivileged role with a statement timeout, and checks that a bystander
// session on the same proxy keeps answering and that only it is left.
// The seeds and the corpora found so far (testdata/fuzz) run with every
// `go test`; `make fuzz` runs each target for 30 s.
package proxy
