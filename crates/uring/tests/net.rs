//! Kernel tests of the network loop's operations: real io_uring, real TCP sockets on
//! 127.0.0.1, std clients on the other end. A test whose kernel lacks an opcode prints why and
//! returns early, like io-uring-test's `require!`. Every wait is bounded by a deadline and a
//! round count; nothing sleeps.

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::os::fd::{AsRawFd, OwnedFd};
use std::sync::{mpsc, Arc};
use std::thread;
use std::time::{Duration, Instant};

use bytes::Bytes;
use ringlog_uring::{
    AlignedBuf, AppendWriter, Completion, GatherList, IoError, OpBuf, OptionalOpcode, Ring,
    RingConfig,
};

/// How long any single wait in these tests may take before the test fails.
const DEADLINE: Duration = Duration::from_secs(10);

/// Returns the value, or prints why the test is skipped and returns from the test.
macro_rules! require {
    ($option:expr) => {
        match $option {
            Some(value) => value,
            None => return,
        }
    };
}

/// A ring whose kernel supports every opcode in `opcodes`, or `None` (with the reason).
fn ring_supporting(opcodes: &[OptionalOpcode]) -> Option<Ring> {
    let ring = match Ring::new(RingConfig {
        entries: 64,
        ops_in_flight_max: 64,
    }) {
        Ok(ring) => ring,
        Err(error) => {
            println!("skipped: cannot create an io_uring here: {error}");
            return None;
        }
    };
    if let Err(error) = ring.probe() {
        println!("skipped: {error}");
        return None;
    }
    for &opcode in opcodes {
        if !ring.supports(opcode) {
            println!("skipped: this kernel lacks IORING_OP_{}", opcode.name());
            return None;
        }
    }
    Some(ring)
}

/// A listening socket on 127.0.0.1 (any port): its address and its descriptor for the ring.
fn listener() -> (SocketAddr, Arc<OwnedFd>) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1");
    let address = listener.local_addr().expect("local address");
    (address, Arc::new(OwnedFd::from(listener)))
}

/// A connected pair: a std client and the server side's descriptor for the ring.
fn connected_pair() -> (TcpStream, Arc<OwnedFd>) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1");
    let address = listener.local_addr().expect("local address");
    let client = TcpStream::connect(address).expect("connect");
    client
        .set_read_timeout(Some(DEADLINE))
        .expect("read timeout");
    client
        .set_write_timeout(Some(DEADLINE))
        .expect("write timeout");
    let (server, _) = listener.accept().expect("accept");
    (client, Arc::new(OwnedFd::from(server)))
}

/// Submits and reaps until `count` completions arrived, within `DEADLINE` and a bounded
/// number of rounds, returning them in arrival order.
fn wait_for(ring: &mut Ring, count: usize) -> Vec<Completion> {
    let started = Instant::now();
    let mut completions = Vec::new();
    for _ in 0..100_000 {
        if completions.len() >= count {
            assert_eq!(completions.len(), count, "more completions than expected");
            return completions;
        }
        let remaining = DEADLINE.saturating_sub(started.elapsed());
        assert!(
            !remaining.is_zero(),
            "only {} of {count} completions within {DEADLINE:?}",
            completions.len()
        );
        ring.submit_and_wait_timeout(count - completions.len(), remaining)
            .expect("submit_and_wait_timeout");
        ring.reap(&mut completions);
    }
    panic!("only {} of {count} completions arrived", completions.len());
}

fn find(completions: &mut Vec<Completion>, tag: u64) -> Completion {
    let position = completions
        .iter()
        .position(|completion| completion.tag == tag)
        .unwrap_or_else(|| panic!("no completion for tag {tag}"));
    completions.remove(position)
}

fn transferred(len: usize) -> Result<u32, IoError> {
    Ok(u32::try_from(len).expect("test transfers fit in u32"))
}

/// Reads exactly `len` bytes from `client` (bounded by its read timeout).
fn read_exactly(client: &mut TcpStream, len: usize) -> Vec<u8> {
    let mut received = vec![0; len];
    client.read_exact(&mut received).expect("client reads");
    received
}

// Checks the probe of the optional opcodes: it reports each one (all present on Linux >= 6.1),
// and the storage probe passes regardless of them.
#[test]
fn probe_reports_optional_opcodes() {
    let ring = require!(ring_supporting(&[]));
    for opcode in OptionalOpcode::ALL {
        println!("IORING_OP_{}: {}", opcode.name(), ring.supports(opcode));
    }
    assert!(ring.probe().is_ok());
}

// Checks multishot accept: one armed accept takes 3 connections from std clients, each a
// completion under the same tag with more == true whose descriptor becomes an OwnedFd for the
// very connection the client opened (peer address = client's local address). Canceling it
// ends it with a final completion, more == false and Canceled, and releases the listener.
#[test]
fn multishot_accept_takes_three_connections() {
    let mut ring = require!(ring_supporting(&[
        OptionalOpcode::Accept,
        OptionalOpcode::AsyncCancel
    ]));
    let (address, listener) = listener();
    ring.accept_multishot(&listener, 7).unwrap();
    ring.submit_and_wait(0).unwrap();
    let clients: Vec<TcpStream> = (0..3)
        .map(|_| TcpStream::connect(address).expect("connect"))
        .collect();
    let mut client_addresses: Vec<SocketAddr> = clients
        .iter()
        .map(|client| client.local_addr().unwrap())
        .collect();

    let mut peer_addresses = Vec::new();
    for mut completion in wait_for(&mut ring, 3) {
        assert_eq!(completion.tag, 7);
        assert!(completion.more, "the accept stays armed: {completion:?}");
        assert!(!completion.foreign);
        let raw = completion.result.clone().expect("an accepted connection");
        let fd = completion
            .take_accepted()
            .expect("the completion owns the descriptor");
        assert_eq!(u32::try_from(fd.as_raw_fd()).unwrap(), raw);
        assert!(completion.take_accepted().is_none(), "taken only once");
        peer_addresses.push(TcpStream::from(fd).peer_addr().unwrap());
    }
    peer_addresses.sort();
    client_addresses.sort();
    assert_eq!(peer_addresses, client_addresses);

    ring.cancel(7, 8).unwrap();
    let mut completions = wait_for(&mut ring, 2);
    let last = find(&mut completions, 7);
    assert!(!last.more, "a canceled multishot accept has ended");
    assert_eq!(last.result, Err(IoError::Canceled));
    assert_eq!(find(&mut completions, 8).result, Ok(0));
    assert_eq!(
        Arc::strong_count(&listener),
        1,
        "the accept released the listener"
    );
    assert_eq!(ring.in_flight(), 0);
}

// Checks recv: data a client sent arrives in a Vec buffer (handed back with the byte count),
// then in an aligned buffer; after the client closes its side, a recv completes with Ok(0)
// (peer closed) and still hands its buffer back.
#[test]
fn recv_reads_data_then_peer_close_is_zero() {
    let mut ring = require!(ring_supporting(&[OptionalOpcode::Recv]));
    let (mut client, socket) = connected_pair();
    client.write_all(b"produce request").unwrap();
    let buf = vec![0; 64];
    let address = buf.as_ptr();
    ring.recv(&socket, OpBuf::Vec(buf), 1).unwrap();
    let completion = wait_for(&mut ring, 1).pop().unwrap();
    assert_eq!(completion.result, Ok(15));
    let buf = completion.buf.unwrap().into_vec().unwrap();
    assert_eq!(buf.as_ptr(), address, "the same buffer comes back");
    assert_eq!(&buf[..15], b"produce request");

    client.write_all(b"second").unwrap();
    ring.recv(&socket, OpBuf::Owned(AlignedBuf::zeroed(4096, 4096)), 2)
        .unwrap();
    let completion = wait_for(&mut ring, 1).pop().unwrap();
    assert_eq!(completion.result, Ok(6));
    assert_eq!(&completion.buf.unwrap().bytes()[..6], b"second");

    client.shutdown(Shutdown::Write).unwrap();
    ring.recv(&socket, OpBuf::Vec(buf), 3).unwrap();
    let completion = wait_for(&mut ring, 1).pop().unwrap();
    assert_eq!(completion.result, Ok(0), "peer closed");
    assert!(completion.buf.is_some());
}

// Checks send and sendmsg: a send of header bytes, then a sendmsg of 3 chunks (a Vec header,
// a published range of a tail buffer, and Bytes) arrive at a std client complete and in
// order. The sendmsg's completion hands the gather list back with every chunk, and the tail
// buffer is free to reset once that completion is dropped.
#[test]
fn send_and_sendmsg_arrive_in_order() {
    let mut ring = require!(ring_supporting(&[
        OptionalOpcode::Send,
        OptionalOpcode::SendMsg
    ]));
    let (mut client, socket) = connected_pair();
    let mut tail = AppendWriter::new(8192, 4096);
    tail.append(b"skipped|").unwrap();
    tail.append(b"record batch bytes").unwrap();

    ring.send(&socket, OpBuf::Vec(b"first response".to_vec()), 1)
        .unwrap();
    let completion = wait_for(&mut ring, 1).pop().unwrap();
    assert_eq!(completion.result, Ok(14));
    assert_eq!(read_exactly(&mut client, 14), b"first response");

    let mut parts = GatherList::with_capacity(3);
    parts.push(OpBuf::Vec(b"[header]".to_vec()));
    parts.push(OpBuf::Shared(tail.shared(), 8..26));
    parts.push(OpBuf::Bytes(Bytes::from_static(b"[trailer]")));
    let total = parts.len();
    ring.sendmsg(&socket, parts, 2).unwrap();
    assert!(
        !tail.try_reset(),
        "the in-flight sendmsg holds the tail buffer"
    );
    let completion = wait_for(&mut ring, 1).pop().unwrap();
    assert_eq!(completion.result, transferred(total));
    assert_eq!(
        read_exactly(&mut client, total),
        b"[header]record batch bytes[trailer]"
    );
    let parts = completion.gather.expect("the gather list comes back");
    assert_eq!(parts.chunks().len(), 3);
    assert!(completion.buf.is_none());
    drop(parts);
    assert!(tail.try_reset(), "no reference is left");
}

/// Byte `index` of the short-send payload: a pattern whose period (251) is prime to every
/// buffer size, so a misplaced or repeated chunk shows.
fn pattern_byte(index: usize) -> u8 {
    u8::try_from(index % 251).expect("below 251")
}

// Checks a real short send and its resubmission: a 64 MiB send to a client that does not
// read yet sends what the socket buffers hold (far less: tcp_wmem and tcp_rmem maxima are a few
// MiB), then waits; canceling it completes it with Ok(n), 0 < n < 64 MiB (the bytes sent
// before it was stopped). The rest is resubmitted without copying (a one-chunk GatherList
// advanced by n) and the client receives every byte exactly once, in order.
#[test]
fn short_send_is_resubmitted_from_where_it_stopped() {
    let mut ring = require!(ring_supporting(&[
        OptionalOpcode::Send,
        OptionalOpcode::SendMsg,
        OptionalOpcode::AsyncCancel
    ]));
    let (mut client, socket) = connected_pair();
    let total = 64 << 20;
    let payload: Vec<u8> = (0..total).map(pattern_byte).collect();
    ring.send(&socket, OpBuf::Vec(payload), 1).unwrap();
    ring.submit_and_wait(0).unwrap();
    ring.cancel(1, 2).unwrap();
    let mut completions = wait_for(&mut ring, 2);
    let cancel = find(&mut completions, 2);
    assert_eq!(
        cancel.result,
        Ok(0),
        "the send was waiting for buffer space"
    );
    let short = find(&mut completions, 1);
    let sent = usize::try_from(short.result.clone().expect("a short send is Ok(n)")).unwrap();
    println!("sent {sent} of {total} bytes before the cancel");
    assert!(sent > 0, "the socket buffers took some bytes");
    assert!(sent < total, "the socket buffers cannot take 64 MiB");

    let reader = thread::spawn(move || read_exactly(&mut client, total));
    let mut rest = GatherList::from(short.buf.expect("the buffer comes back"));
    rest.advance(sent);
    for round in 0..100 {
        assert!(round < 99, "the rest never went out");
        ring.sendmsg(&socket, rest, 3).unwrap();
        let completion = wait_for(&mut ring, 1).pop().unwrap();
        let sent = usize::try_from(completion.result.expect("sendmsg")).unwrap();
        rest = completion.gather.expect("the gather list comes back");
        rest.advance(sent);
        if rest.is_empty() {
            break;
        }
    }
    let received = reader.join().expect("the reader does not panic");
    assert_eq!(received.len(), total);
    let first_wrong = received
        .iter()
        .enumerate()
        .position(|(index, &byte)| byte != pattern_byte(index));
    assert_eq!(first_wrong, None, "every byte exactly once, in order");
}

/// True once thread `tid` of this process is asleep (state `S` in `/proc`).
fn is_sleeping(tid: libc::pid_t) -> bool {
    let stat = std::fs::read_to_string(format!("/proc/self/task/{tid}/stat")).unwrap_or_default();
    // The state follows the command name, which is in parentheses and may contain spaces.
    let state = stat.rsplit_once(')').map(|(_, rest)| rest.trim_start());
    state.is_some_and(|rest| rest.starts_with('S'))
}

// Checks MSG_RING across threads: ring B, on its own thread, blocks in
// submit_and_wait_timeout with nothing in flight (this thread polls /proc, with a deadline,
// until B's thread is asleep); ring A, on this thread, then posts a message to B's ring_fd.
// B wakes up and reaps a foreign completion carrying the sender's tag and result (its
// in-flight table untouched), and A gets its own completion, Ok(0).
#[test]
fn msg_ring_wakes_a_ring_waiting_on_another_thread() {
    let mut ring = require!(ring_supporting(&[OptionalOpcode::MsgRing]));
    let (fd_sender, fd_receiver) = mpsc::channel();
    let target = thread::spawn(move || {
        let Some(mut target) = ring_supporting(&[OptionalOpcode::MsgRing]) else {
            fd_sender.send(None).unwrap();
            return Vec::new();
        };
        // SAFETY: gettid has no preconditions and touches no memory.
        let tid = unsafe { libc::gettid() };
        fd_sender.send(Some((target.ring_fd(), tid))).unwrap();
        let started = Instant::now();
        let mut completions = Vec::new();
        for _ in 0..1000 {
            if !completions.is_empty() || started.elapsed() >= DEADLINE {
                break;
            }
            target.submit_and_wait_timeout(1, DEADLINE).unwrap();
            target.reap(&mut completions);
        }
        println!("woken after {:?}", started.elapsed());
        assert_eq!(target.in_flight(), 0);
        completions
    });
    let (target_fd, target_tid) = require!(fd_receiver.recv().unwrap());
    let started = Instant::now();
    while !is_sleeping(target_tid) {
        assert!(started.elapsed() < DEADLINE, "ring B never went to sleep");
        thread::yield_now();
    }
    ring.msg_ring(target_fd, 42, 7, 1).unwrap();
    let own = wait_for(&mut ring, 1).pop().unwrap();
    assert_eq!(own.tag, 1);
    assert_eq!(own.result, Ok(0));
    assert!(!own.foreign);

    let completions = target.join().expect("the target thread does not panic");
    assert_eq!(completions.len(), 1, "{completions:?}");
    let woken = &completions[0];
    assert!(woken.foreign);
    assert_eq!(woken.tag, 42);
    assert_eq!(woken.result, Ok(7));
    assert!(woken.buf.is_none());
}

// Checks that a ring can post to itself and that a foreign completion arriving while the
// ring's own ops are in flight is reported beside them without disturbing them.
#[test]
fn msg_ring_to_self_is_a_foreign_completion() {
    let mut ring = require!(ring_supporting(&[
        OptionalOpcode::MsgRing,
        OptionalOpcode::Timeout
    ]));
    ring.timeout(Duration::from_millis(20), 1).unwrap();
    ring.msg_ring(ring.ring_fd(), 9, 0, 2).unwrap();
    let mut completions = wait_for(&mut ring, 3);
    let foreign = find(&mut completions, 9);
    assert!(foreign.foreign);
    assert_eq!(foreign.result, Ok(0));
    assert_eq!(find(&mut completions, 2).result, Ok(0));
    assert_eq!(find(&mut completions, 1).result, Ok(0), "the timer fired");
}

// Checks timers: a 20 ms timeout completes with Ok(0) (fired) no earlier than 20 ms after it
// was queued; a one-hour timeout canceled at once completes with Canceled, and the cancel
// itself with Ok(0). A cancel of a tag with nothing in flight completes with ENOENT.
#[test]
fn timeout_fires_and_cancel_stops_one() {
    let mut ring = require!(ring_supporting(&[
        OptionalOpcode::Timeout,
        OptionalOpcode::AsyncCancel
    ]));
    let started = Instant::now();
    ring.timeout(Duration::from_millis(20), 1).unwrap();
    let fired = wait_for(&mut ring, 1).pop().unwrap();
    assert_eq!(fired.tag, 1);
    assert_eq!(fired.result, Ok(0));
    assert!(started.elapsed() >= Duration::from_millis(20));

    ring.timeout(Duration::from_secs(3600), 2).unwrap();
    ring.cancel(2, 3).unwrap();
    let mut completions = wait_for(&mut ring, 2);
    assert_eq!(find(&mut completions, 2).result, Err(IoError::Canceled));
    assert_eq!(find(&mut completions, 3).result, Ok(0));

    ring.cancel(99, 4).unwrap();
    let missing = wait_for(&mut ring, 1).pop().unwrap();
    assert_eq!(
        missing.result,
        Err(IoError::Unexpected {
            op: "cancel",
            errno: libc::ENOENT
        })
    );
}

// Checks that canceling a recv on an idle socket frees nothing early: the recv completes
// under its own tag with Canceled and hands back the very buffer it owned, the cancel
// completes with Ok(0), and the socket is released only then.
#[test]
fn cancel_of_idle_recv_returns_its_buffer() {
    let mut ring = require!(ring_supporting(&[
        OptionalOpcode::Recv,
        OptionalOpcode::AsyncCancel
    ]));
    let (_client, socket) = connected_pair();
    let buf = vec![0xEE; 4096];
    let address = buf.as_ptr();
    ring.recv(&socket, OpBuf::Vec(buf), 1).unwrap();
    ring.submit_and_wait(0).unwrap();
    assert_eq!(Arc::strong_count(&socket), 2, "the recv holds the socket");
    ring.cancel(1, 2).unwrap();
    let mut completions = wait_for(&mut ring, 2);
    assert_eq!(find(&mut completions, 2).result, Ok(0));
    let recv = find(&mut completions, 1);
    assert_eq!(recv.result, Err(IoError::Canceled));
    let buf = recv.buf.unwrap().into_vec().unwrap();
    assert_eq!(buf.as_ptr(), address, "the same buffer comes back");
    assert_eq!(buf, vec![0xEE; 4096], "untouched");
    assert_eq!(Arc::strong_count(&socket), 1);
}

// Checks that dropping a ring with ops that would wait forever (an armed multishot accept, a
// submitted recv on an idle socket, a queued but unsubmitted recv, a one-hour timer) neither
// crashes nor hangs: the drop cancels them, waits for their completions, and releases the
// listener and the sockets (nothing leaked), well within the deadline.
#[test]
fn dropping_ring_with_pending_recv_cancels_it() {
    let (_address, listener) = listener();
    let (_first_client, first) = connected_pair();
    let (_second_client, second) = connected_pair();
    let started = Instant::now();
    {
        let mut ring = require!(ring_supporting(&[
            OptionalOpcode::Accept,
            OptionalOpcode::Recv,
            OptionalOpcode::Timeout
        ]));
        ring.accept_multishot(&listener, 1).unwrap();
        ring.recv(&first, OpBuf::Vec(vec![0; 4096]), 2).unwrap();
        ring.timeout(Duration::from_secs(3600), 3).unwrap();
        ring.submit_and_wait(0).unwrap();
        ring.recv(&second, OpBuf::Owned(AlignedBuf::zeroed(4096, 4096)), 4)
            .unwrap();
        assert_eq!(ring.in_flight(), 4);
    }
    println!("drop took {:?}", started.elapsed());
    assert!(started.elapsed() < DEADLINE);
    assert_eq!(Arc::strong_count(&listener), 1);
    assert_eq!(Arc::strong_count(&first), 1);
    assert_eq!(Arc::strong_count(&second), 1);
}
