//! The network baseline: the round-trip time of a TCP ping-pong over 127.0.0.1.
//!
//! A Kafka produce at queue depth 1 pays at least one round trip on top of the log's commit,
//! so its latency is judged against this floor measured in the same run (DESIGN.md §8). An
//! echo thread reads each message whole and writes it back; the client sends the next one only
//! when the previous one is back (queue depth 1). Both sides set TCP_NODELAY, as Kafka
//! clients and ringlog do, so no Nagle delay hides in the figure. Measured for 64 B (the
//! smallest useful request) and 1 KiB (one produce request of a 1 KiB record).
//!
//! Invariants: the echo thread owns only its socket and ends when the client closes it; every
//! message is read and written whole (`read_exact`/`write_all`), so a sample is one complete
//! round trip of `size_bytes` each way.

use std::io::{self, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::thread;
use std::time::Duration;

use anyhow::Context;
use ringlog_types::units::KIB;

use crate::latency::{new_histogram, record_us, Stopwatch};
use crate::report::LatencySummary;

/// Size of the small message.
pub const SMALL_MESSAGE_BYTES: u64 = 64;
/// Size of the large message (one 1 KiB produce request).
pub const LARGE_MESSAGE_BYTES: u64 = KIB;

/// How many round trips each size measures.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RttPlan {
    /// Measured round trips per message size.
    pub sample_count: u64,
    /// Unmeasured round trips before them.
    pub warmup_count: u64,
    /// Stop early once the measured part has taken this long (the report gives real counts).
    pub measured_time_max: Duration,
}

impl RttPlan {
    /// Full runs: 50,000 samples per size.
    pub const FULL: RttPlan = RttPlan {
        sample_count: 50_000,
        warmup_count: 2_000,
        measured_time_max: Duration::from_secs(20),
    };

    /// `--quick`: 5,000 samples per size, at most 2 s each.
    pub const QUICK: RttPlan = RttPlan {
        sample_count: 5_000,
        warmup_count: 500,
        measured_time_max: Duration::from_secs(2),
    };

    /// The plan for `--quick` or a full run.
    pub fn for_mode(quick: bool) -> RttPlan {
        if quick {
            RttPlan::QUICK
        } else {
            RttPlan::FULL
        }
    }
}

/// Round-trip percentiles of one message size.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Rtt {
    /// Percentiles in µs.
    pub latency_us: LatencySummary,
    /// Measured round trips (warm-up excluded).
    pub sample_count: u64,
}

/// Measures the loopback round trip of `size_bytes` messages at queue depth 1.
pub fn measure_rtt(size_bytes: u64, plan: RttPlan) -> anyhow::Result<Rtt> {
    let size = usize::try_from(size_bytes).context("message size")?;
    let listener = TcpListener::bind("127.0.0.1:0").context("binding the echo listener")?;
    let address = listener.local_addr().context("echo listener address")?;
    let echo = thread::Builder::new()
        .name("rtt-echo".to_owned())
        .spawn(move || echo_one_connection(&listener, size))
        .context("starting the echo thread")?;
    let measured = ping_pong(&address.to_string(), size, plan);
    // The client's socket is closed by now (ping_pong returned), so the echo thread ends.
    let echoed = echo
        .join()
        .map_err(|_| anyhow::anyhow!("the echo thread panicked"))?;
    let rtt = measured.context("loopback ping-pong")?;
    echoed.context("loopback echo")?;
    Ok(rtt)
}

/// Accepts one connection and echoes `size`-byte messages until the peer closes it.
fn echo_one_connection(listener: &TcpListener, size: usize) -> io::Result<()> {
    let (mut stream, _) = listener.accept()?;
    stream.set_nodelay(true)?;
    let mut buffer = vec![0_u8; size];
    loop {
        match stream.read_exact(&mut buffer) {
            Ok(()) => stream.write_all(&buffer)?,
            Err(error) if error.kind() == io::ErrorKind::UnexpectedEof => return Ok(()),
            Err(error) => return Err(error),
        }
    }
}

fn ping_pong(address: &str, size: usize, plan: RttPlan) -> io::Result<Rtt> {
    let mut stream = TcpStream::connect(address)?;
    stream.set_nodelay(true)?;
    // A lost echo thread must not hang the run.
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    let message = vec![0x5a_u8; size];
    let mut reply = vec![0_u8; size];
    let mut histogram = new_histogram();
    let mut measured = Stopwatch::start();
    for index in 0..plan.warmup_count + plan.sample_count {
        if index == plan.warmup_count {
            measured = Stopwatch::start();
        }
        let round_trip = Stopwatch::start();
        stream.write_all(&message)?;
        stream.read_exact(&mut reply)?;
        if index >= plan.warmup_count {
            record_us(&mut histogram, round_trip.elapsed());
            if measured.elapsed() >= plan.measured_time_max {
                break;
            }
        }
    }
    if reply != message {
        return Err(io::Error::other("the echo changed the message"));
    }
    Ok(Rtt {
        latency_us: LatencySummary::from_histogram(&histogram),
        sample_count: histogram.len(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    // Both sizes complete the planned number of round trips with plausible percentiles
    // (ordered, and not zero: a loopback round trip takes at least a microsecond).
    #[test]
    fn measures_both_sizes() {
        let plan = RttPlan {
            sample_count: 200,
            warmup_count: 20,
            measured_time_max: Duration::from_secs(60),
        };
        for size_bytes in [SMALL_MESSAGE_BYTES, LARGE_MESSAGE_BYTES] {
            let rtt = measure_rtt(size_bytes, plan).unwrap();
            assert_eq!(rtt.sample_count, 200);
            let latency = rtt.latency_us;
            assert!(latency.p50 >= 1, "{latency:?}");
            assert!(latency.p50 <= latency.p99, "{latency:?}");
            assert!(latency.p99 <= latency.max, "{latency:?}");
        }
    }

    // With no time allowed, the measured part stops after its first round trip.
    #[test]
    fn time_cap_stops_early() {
        let plan = RttPlan {
            measured_time_max: Duration::ZERO,
            ..RttPlan::QUICK
        };
        assert_eq!(measure_rtt(64, plan).unwrap().sample_count, 1);
    }
}
