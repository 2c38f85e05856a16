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
//	                  the secret in BackendKeyData with one of its own
//	                  (cancel.go).
//	                  Every wait for the server until the session is ready
//	                  (the connect, TLS, each answer, the guard's setup
//	                  queries) lasts at most upstreamTimeout (5 s): a server
//	                  that takes connections but answers nothing gets the
//	                  client FATAL 08001, not a wait until the client's own
//	                  timeout with no SQLSTATE.
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
// calling recvfrom, sendto and epoll_wait as raw system calls (recvfrom
// and sendto, as PgBouncer uses, rather than read and write, which go
// through the file layer first). The sockets are
// duplicated out of the Go runtime's poller for this. Per transaction the
// loop makes about two receives, two sends and half an epoll_wait, and the
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
// result and the session's FATAL are not lost. A session that ends from the
// server's side also half-closes the client's socket and drains what the
// client still sends, for up to 1 s, before closing it: closed with input
// unread, the socket resets the client, and a client busy sending (a COPY
// FROM STDIN) then fails its send without reading the FATAL. A failed send
// to the server does not end the session by itself either: the server's
// FATAL may still wait in its socket, so the client is no longer read and
// the server's socket ends the session once that FATAL is relayed.
//
// # Cancel requests
//
// Clients get, in BackendKeyData, the server's own process id and a
// random secret of the proxy's own, as long as the server's (cancel.go).
// The process id is the server's so that everything keyed by it matches
// what the driver reports: pg_backend_pid(), pg_stat_activity, pg_locks,
// the server's log lines, and pg_terminate_backend(conn.PID()). The
// secret is the proxy's so that a cancel request has to come through the
// proxy: the server's secret never leaves the instance that holds the
// session. The registry maps (process id, secret) to the server's key; a
// CancelRequest found there is sent to the server with the server's key on
// a new connection, and an unknown one is ignored, as PostgreSQL does
// (logged at debug level, never with the key).
//
// # Cancel requests across instances
//
// Several instances behind one TCP load balancer are peered
// (Options.PeerID, Options.Peers): a cancel request is a new connection
// and may land on another instance than its query's. The key cannot say
// which instance issued it: the process id is the server's, and the secret
// has no bits to spare (below). So an instance that does not know a key
// passes it to every other peer at once, as it came but with bit 31 of the
// process id set ("forwarded"; PostgreSQL's process ids are positive, so
// no server key has it). The instance holding the session sends it to the
// server; the others ignore it; none passes a forwarded request on, so a
// request goes one hop whatever the peers lists say, and a wrong list
// cannot make a loop. Forwarding is plain TCP, like the cancel to the
// server, and the requester gets no reply either way: SSL and cancel
// behaviour are those of a single instance. The peer id only tells an
// instance which entry of the shared peers list is its own.
//
// Why not carry the peer id in the key, as PgBouncer does? PgBouncer's key
// is wholly its own (a made-up process id and secret, 64 bits), so it can
// spend 16 bits on the peer id and 2 on a hop count and keep 45 random
// bits. pgveil's process id is the server's, which any role can read in
// pg_stat_activity, so all the randomness is in the secret: 32 bits in
// protocol 3.0. A 14-bit peer id would leave 18, which an attacker who
// knows a session's process id guesses in 2^17 tries on average, seconds
// of cancel requests. Asking every peer keeps all 32 bits, and every bit
// of a protocol 3.2 secret (as long as the server's, up to 256 bytes).
//
// The security argument. A cancel request only interrupts the query
// running at that moment; it neither reads data nor ends the session. To
// cancel someone else's query an attacker needs its key. The process id
// is public; the secret is 32 random bits (protocol 3.0), so each guess
// succeeds with odds 2^-32, as against PostgreSQL itself, whatever the
// number of instances: process ids are unique on the one server, so of
// all the registries of a group at most one holds a key with that process
// id, and a forwarded guess is checked against that one alone. Half the
// key space is 2^31 requests, each a new TCP connection: at 10,000 a
// second, about 2.5 days of sustained requests per session, each query of
// which would end long before. A wrong guess costs the attacker a
// connection and gains nothing; it is counted, in
// pgveil_cancel_requests_total{result="ignored"} on the instance that
// holds no such key, so guessing shows. What it costs the group: the
// instance it reaches opens one connection to each other peer, and they
// open none. A flood of made-up keys is bounded by maxForwarding: at most
// 64 requests per instance are being passed to the peers at once, beyond
// that an unknown key is dropped (counted "ignored"), so the extra
// connections a flood causes stay under 64 times the number of peers.
// Setting bit 31 in a request of one's own only keeps it from being
// forwarded. The secret a peer forwards is the proxy's, never the
// server's.
//
// # Behind a transaction pooler
//
// The upstream may be PgBouncer rather than PostgreSQL. The proxy relays
// to it as to a server: PgBouncer authenticates, hands out its own
// BackendKeyData (which cancels are forwarded with), and in session
// pooling nothing differs. In transaction pooling each transaction may run
// on another server connection, and a statement or cursor name the
// session defined may exist there as another session's. A masked session
// knows its names only as it defined them, so with
// Options.TransactionPooling it forgets them all (distrust, and the
// policy's Forget) at every ReadyForQuery that says idle: a later use of
// a name withholds its values instead of masking another session's
// statement by this one's plan. Within a transaction the server connection
// stays, and so do the names, but for rewritten statements (ANONYMIZE): the
// proxy reads their answer as a count when the Execute is forwarded, before
// the server says where it ran, so they are dropped at the client's Sync
// and a later Bind of one is rejected (dropRewrites).
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
