//! `ringlog produce`, `ringlog consume` and `ringlog topics` run as the real binary against
//! the client crate's in-memory test broker (crates/client/tests/common/broker.rs), started
//! in this test process on 127.0.0.1:0.

#![allow(clippy::unwrap_used, clippy::expect_used)] // In tests a panic is the failure report.

#[path = "../../client/tests/common/broker.rs"]
mod broker;

use std::io::Write;
use std::process::{Command, Output, Stdio};

use broker::TestBroker;

/// Runs `ringlog args..` with `stdin` as standard input.
fn ringlog(args: &[&str], stdin: &[u8]) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_ringlog"))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn ringlog");
    child.stdin.take().unwrap().write_all(stdin).unwrap();
    let output = child.wait_with_output().unwrap();
    assert!(
        output.status.success(),
        "ringlog {args:?}: {}\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    output
}

// Produces 1,000 stdin lines with `key:value` keys split off, then consumes them back from
// the beginning with `--count`, with and without `--print-keys`; the output equals the
// input, in order. A consume without `--count` stops at the end of the partition.
#[test]
fn produce_stdin_then_consume_from_beginning() {
    let broker = TestBroker::start();
    let bootstrap = broker.address();
    broker.create_topic("lines", 2);
    let lines: Vec<String> = (0..1000)
        .map(|index| format!("k{index}:value {index}"))
        .collect();
    let input = lines.join("\n") + "\n";
    let output = ringlog(
        &[
            "produce",
            "--bootstrap",
            &bootstrap,
            "--topic",
            "lines",
            "--partition",
            "1",
            "--acks",
            "1",
            "--key-separator",
            ":",
        ],
        input.as_bytes(),
    );
    assert!(String::from_utf8_lossy(&output.stderr).contains("produced 1000 record(s)"));
    assert_eq!(broker.log_end("lines", 1), 1000);

    let consume = |from: &str, extra: &[&str]| {
        let mut args = vec![
            "consume",
            "--bootstrap",
            &bootstrap,
            "--topic",
            "lines",
            "--partition",
            "1",
            "--from",
            from,
        ];
        args.extend_from_slice(extra);
        String::from_utf8(ringlog(&args, b"").stdout).unwrap()
    };
    let keyed: Vec<String> = lines
        .iter()
        .map(|line| line.replacen(':', "\t", 1))
        .collect();
    assert_eq!(
        consume("beginning", &["--count", "1000", "--print-keys"]),
        keyed.join("\n") + "\n"
    );
    let values: Vec<&str> = lines
        .iter()
        .map(|line| line.split_once(':').unwrap().1)
        .collect();
    assert_eq!(
        consume("beginning", &["--count", "1000"]),
        values.join("\n") + "\n"
    );
    assert_eq!(
        consume("beginning", &["--max-wait-ms", "10"])
            .lines()
            .count(),
        1000
    );
    assert_eq!(
        consume("997", &["--count", "3"]),
        values[997..].join("\n") + "\n"
    );
}

// Generated records (`--count`, `--payload-size-bytes`) with acks=0 and acks=all all arrive.
#[test]
fn produce_generated_records() {
    let broker = TestBroker::start();
    let bootstrap = broker.address();
    broker.create_topic("generated", 1);
    for acks in ["0", "all"] {
        ringlog(
            &[
                "produce",
                "--bootstrap",
                &bootstrap,
                "--topic",
                "generated",
                "--acks",
                acks,
                "--count",
                "500",
                "--payload-size-bytes",
                "64",
            ],
            b"",
        );
    }
    broker.wait_until(std::time::Duration::from_secs(20), |state| {
        state.topics["generated"][0].log_end == 1000
    });
    let output = ringlog(
        &[
            "consume",
            "--bootstrap",
            &bootstrap,
            "--topic",
            "generated",
            "--count",
            "1000",
        ],
        b"",
    );
    let stdout = String::from_utf8(output.stdout).unwrap();
    assert_eq!(stdout.lines().count(), 1000);
    assert!(stdout.lines().all(|line| line == "x".repeat(64)));
}

// `topics create`, `topics list` and `topics delete` change and show the broker's topics.
#[test]
fn topics_create_list_delete() {
    let broker = TestBroker::start();
    let bootstrap = broker.address();
    ringlog(
        &[
            "topics",
            "create",
            "orders",
            "--partitions",
            "3",
            "--bootstrap",
            &bootstrap,
        ],
        b"",
    );
    ringlog(
        &["topics", "create", "audit", "--bootstrap", &bootstrap],
        b"",
    );
    let output = ringlog(&["topics", "list", "--bootstrap", &bootstrap], b"");
    assert_eq!(
        String::from_utf8(output.stdout).unwrap(),
        "audit\t1\norders\t3\n"
    );
    ringlog(
        &["topics", "delete", "orders", "--bootstrap", &bootstrap],
        b"",
    );
    let output = ringlog(&["topics", "list", "--bootstrap", &bootstrap], b"");
    assert_eq!(String::from_utf8(output.stdout).unwrap(), "audit\t1\n");
}
