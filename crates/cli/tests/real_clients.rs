//! Unmodified Kafka clients against a real `ringlog serve` process on 127.0.0.1: kcat
//! (librdkafka) once per compression codec, and kafka-python (tests/python/roundtrip.py).
//! Each test starts its own server on free ports with a temporary data directory
//! (tests/kafka_client's `Server`, killed by PID when dropped). A missing client is a failure
//! that says how to install it: `.ci/run` installs both.

// Kafka batch fields are big-endian on the wire.
#![allow(clippy::big_endian_bytes)]

mod kafka_client;

use std::io::Write;
use std::process::{Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context};

use kafka_client::{Server, DEADLINE};

/// Records each client produces and consumes back.
const RECORDS: usize = 10_000;
/// How long one client process may run before the test kills it and fails.
const CLIENT_DEADLINE: Duration = Duration::from_secs(120);
/// The headers kcat attaches to every record (`-H`), as `kcat -C -f %h` prints them.
const KCAT_HEADERS: [&str; 2] = ["trace=abc-123", "source=kcat"];

/// What a client process printed and how it ended.
struct Finished {
    status: ExitStatus,
    stdout: String,
    stderr: String,
}

/// Runs `command` with `stdin` as its input; kills it by PID and fails if it is still
/// running after `CLIENT_DEADLINE`. The wait happens on a helper thread, so the deadline is a
/// channel timeout rather than a sleep.
fn run_with_deadline(mut command: Command, stdin: &[u8]) -> anyhow::Result<Finished> {
    let mut child = command
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("spawning {command:?}"))?;
    let pid = child.id();
    let mut input = child.stdin.take().context("stdin")?;
    let stdin = stdin.to_vec();
    let writer = std::thread::spawn(move || input.write_all(&stdin));
    let (sender, receiver) = mpsc::channel();
    // wait_with_output drains stdout and stderr together, so neither pipe can fill up.
    std::thread::spawn(move || {
        let _ = sender.send(child.wait_with_output());
    });
    match receiver.recv_timeout(CLIENT_DEADLINE) {
        Ok(output) => {
            writer
                .join()
                .map_err(|_| anyhow::anyhow!("stdin writer panicked"))?
                .context("writing the client's stdin")?;
            let output = output?;
            Ok(Finished {
                status: output.status,
                stdout: String::from_utf8(output.stdout)?,
                stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
            })
        }
        Err(_) => {
            let _ = Command::new("kill")
                .arg("-KILL")
                .arg(pid.to_string())
                .status();
            bail!("{command:?} still running after {CLIENT_DEADLINE:?}: killed (pid {pid})")
        }
    }
}

/// Fails with an install hint unless kcat runs.
fn require_kcat() {
    let found = Command::new("kcat")
        .arg("-V")
        .output()
        .is_ok_and(|output| output.status.success());
    assert!(
        found,
        "kcat is not installed; install it with `apt-get install -y kcat` (.ci/run does)"
    );
}

/// Fails with an install hint unless python3 can import kafka-python.
fn require_kafka_python() {
    let found = Command::new("python3")
        .args(["-c", "import kafka"])
        .output()
        .is_ok_and(|output| output.status.success());
    assert!(
        found,
        "python3 cannot import kafka (kafka-python); install it with \
         `pip install kafka-python` (.ci/run does)"
    );
}

/// kcat's input line of record `index`: `key<TAB>value`. The values repeat a few words, so
/// every codec has something to compress, and vary in length.
fn kcat_line(index: usize) -> String {
    let filler = "lorem ipsum ".repeat(index % 9);
    format!("key-{index}\tvalue {index} {filler}end")
}

/// The line `kcat -C -f '%o|%k|%h|%s\n'` prints for record `index` at offset `index`.
fn kcat_expected(index: usize) -> String {
    let line = kcat_line(index);
    let (key, value) = line.split_once('\t').expect("tab");
    format!("{index}|{key}|{}|{value}", KCAT_HEADERS.join(","))
}

/// Kafka's compression type ids (the low 3 bits of a batch's attributes).
fn codec_id(codec: &str) -> u16 {
    match codec {
        "none" => 0,
        "gzip" => 1,
        "snappy" => 2,
        "lz4" => 3,
        "zstd" => 4,
        other => panic!("unknown codec {other}"),
    }
}

/// Reads partition 0 of `topic` from offset 0 to `end` with the test client and returns the
/// compression type and record count of every stored batch. The server stores batches as
/// they arrived, so this shows what kcat sent.
fn stored_batches(server: &Server, topic: &str, end: i64) -> anyhow::Result<Vec<(u16, i64)>> {
    const ATTRIBUTES: usize = 21;
    const LAST_OFFSET_DELTA: usize = 23;
    const HEADER_BYTES: usize = 61;
    let mut client = server.client()?;
    let mut batches = Vec::new();
    let mut offset = 0i64;
    let deadline = Instant::now() + DEADLINE;
    while offset < end {
        ensure!(Instant::now() < deadline, "fetch stuck at offset {offset}");
        let (code, _, records) = client.fetch(topic, 0, offset, 1000)?;
        ensure!(code == 0, "fetch at {offset}: error code {code}");
        let mut rest = &records[..];
        while rest.len() >= HEADER_BYTES {
            let length = i32::from_be_bytes(rest[8..12].try_into()?);
            let size = 12 + usize::try_from(length)?;
            if size > rest.len() {
                break;
            }
            let base = i64::from_be_bytes(rest[..8].try_into()?);
            let attributes = u16::from_be_bytes(rest[ATTRIBUTES..ATTRIBUTES + 2].try_into()?);
            let delta =
                i32::from_be_bytes(rest[LAST_OFFSET_DELTA..LAST_OFFSET_DELTA + 4].try_into()?);
            batches.push((attributes & 0x7, i64::from(delta) + 1));
            offset = base + i64::from(delta) + 1;
            rest = &rest[size..];
        }
    }
    Ok(batches)
}

/// kcat produces `RECORDS` keyed records with two headers, compressed with `codec`, with
/// acks=all to an auto-created topic, then consumes them back from the beginning (`-e`:
/// exit at the end). Every printed line (offset, key, headers, value) must equal what was
/// sent, in order. The batches the server stored show which codec librdkafka really used
/// (it turns compression off for brokers it thinks lack it): every batch must be `stored`
/// or uncompressed, and `stored` batches must hold most records. librdkafka sends a batch
/// uncompressed when compressing would make it larger, as for a lone first record.
fn kcat_round_trip(codec: &str, stored: &str) -> anyhow::Result<()> {
    require_kcat();
    let dir = tempfile::tempdir()?;
    let server = Server::start(&dir.path().join("data"), "auto_create_topics = true\n")?;
    let bootstrap = server.listen.to_string();
    let topic = format!("kcat-{codec}");
    let input: String = (0..RECORDS).map(|index| kcat_line(index) + "\n").collect();

    let mut produce = Command::new("kcat");
    produce.args([
        "-P", "-b", &bootstrap, "-t", &topic, "-K", "\t", "-z", codec,
    ]);
    produce.args(["-X", "acks=all"]);
    for header in KCAT_HEADERS {
        produce.args(["-H", header]);
    }
    let produced = run_with_deadline(produce, input.as_bytes())?;
    ensure!(
        produced.status.success(),
        "kcat -P -z {codec}: {}\n{}\nserver log:\n{}",
        produced.status,
        produced.stderr,
        server.log_text()
    );

    let mut consume = Command::new("kcat");
    consume.args([
        "-C",
        "-b",
        &bootstrap,
        "-t",
        &topic,
        "-o",
        "beginning",
        "-e",
        "-q",
    ]);
    consume.args(["-f", "%o|%k|%h|%s\n"]);
    let consumed = run_with_deadline(consume, b"")?;
    ensure!(
        consumed.status.success(),
        "kcat -C ({codec}): {}\n{}\nserver log:\n{}",
        consumed.status,
        consumed.stderr,
        server.log_text()
    );
    let lines: Vec<&str> = consumed.stdout.lines().collect();
    ensure!(
        lines.len() == RECORDS,
        "{codec}: consumed {} records, produced {RECORDS}; kcat said:\n{}",
        lines.len(),
        consumed.stderr
    );
    for (index, line) in lines.iter().enumerate() {
        let expected = kcat_expected(index);
        ensure!(
            *line == expected,
            "{codec}: record {index}: got {line:?}, sent {expected:?}"
        );
    }

    let batches = stored_batches(&server, &topic, i64::try_from(RECORDS)?)?;
    let stored_id = codec_id(stored);
    ensure!(
        batches.iter().all(|&(id, _)| id == stored_id || id == 0),
        "{codec}: stored batches (compression type, records): {batches:?}"
    );
    let in_stored: i64 = batches
        .iter()
        .filter(|&&(id, _)| id == stored_id)
        .map(|&(_, records)| records)
        .sum();
    ensure!(
        in_stored * 2 > i64::try_from(RECORDS)?,
        "{codec}: only {in_stored} records stored as {stored}: {batches:?}"
    );
    Ok(())
}

#[test]
fn kcat_round_trip_uncompressed() -> anyhow::Result<()> {
    kcat_round_trip("none", "none")
}

#[test]
fn kcat_round_trip_gzip() -> anyhow::Result<()> {
    kcat_round_trip("gzip", "gzip")
}

#[test]
fn kcat_round_trip_snappy() -> anyhow::Result<()> {
    kcat_round_trip("snappy", "snappy")
}

// librdkafka compresses with lz4 only for brokers that advertise FindCoordinator v0 (its
// LZ4 feature stands in for Kafka 0.8.2, rdkafka_feature.c). ringlog advertises
// FindCoordinator 0-6 for that reason (docs/kafka-protocol.md), so the batches are lz4.
#[test]
fn kcat_round_trip_lz4() -> anyhow::Result<()> {
    kcat_round_trip("lz4", "lz4")
}

#[test]
fn kcat_round_trip_zstd() -> anyhow::Result<()> {
    kcat_round_trip("zstd", "zstd")
}

// kafka-python (tests/python/roundtrip.py) creates a 4-partition topic with its admin
// client, produces 10,000 keyed records with headers through KafkaProducer(acks='all'),
// and reads them back with a group-less KafkaConsumer assigned the 4 partitions; the script
// compares every partition's records, in order, and exits non-zero on any difference. The
// broker version is detected from our ApiVersions (no api_version pinned).
#[test]
fn kafka_python_round_trip() -> anyhow::Result<()> {
    require_kafka_python();
    let dir = tempfile::tempdir()?;
    let server = Server::start(&dir.path().join("data"), "")?;
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/python/roundtrip.py");
    let mut python = Command::new("python3");
    python.arg(script).arg(server.listen.to_string()).arg("rt");
    python.arg(RECORDS.to_string());
    let finished = run_with_deadline(python, b"")?;
    ensure!(
        finished.status.success(),
        "roundtrip.py: {}\n{}{}\nserver log:\n{}",
        finished.status,
        finished.stdout,
        finished.stderr,
        server.log_text()
    );
    let summary = format!("roundtrip ok: {RECORDS} records, partitions ");
    ensure!(
        finished.stdout.contains(&summary),
        "unexpected summary: {}",
        finished.stdout
    );
    // Every partition got some of the keys: the line ends with four non-zero counts.
    let line = finished
        .stdout
        .lines()
        .find(|line| line.starts_with(&summary))
        .context("summary line")?;
    let counts: Vec<usize> = line[summary.len()..]
        .split('/')
        .map(str::parse)
        .collect::<Result<_, _>>()?;
    ensure!(counts.len() == 4, "{line}");
    ensure!(counts.iter().all(|&count| count > 0), "{line}");
    ensure!(counts.iter().sum::<usize>() == RECORDS, "{line}");
    Ok(())
}

// A second `ringlog serve` on the listen port of a running one fails to start ("Address in
// use") instead of sharing the port through SO_REUSEPORT and taking some of its clients'
// connections; the first keeps serving. Found while running the clients above next to
// another node on the same machine.
#[test]
fn second_server_on_same_listen_port_is_refused() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let first = Server::start(&dir.path().join("first"), "")?;
    let mut second = Command::new(env!("CARGO_BIN_EXE_ringlog"));
    second
        .arg("serve")
        .arg("--data-dir")
        .arg(dir.path().join("second"));
    second.args([
        "--listen",
        &first.listen.to_string(),
        "--write-path",
        "mmap",
    ]);
    second.args(["--http-listen", &kafka_client::free_address().to_string()]);
    let finished = run_with_deadline(second, b"")?;
    ensure!(
        !finished.status.success(),
        "second server started: {}",
        finished.stderr
    );
    ensure!(
        finished.stderr.contains("in use"),
        "unexpected error: {}",
        finished.stderr
    );
    let mut client = first.client()?;
    ensure!(client.create_topic("still-served", 1)? == 0);
    Ok(())
}
