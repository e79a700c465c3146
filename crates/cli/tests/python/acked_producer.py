"""kafka-python producer that reports every acknowledgement, for the replication tests.

Usage: python3 acked_producer.py BOOTSTRAP TOPIC COUNT [IN_FLIGHT]

Sends records `k-<index>` -> `v-<index>...` to TOPIC with KafkaProducer(acks='all',
retries=0), at most IN_FLIGHT (default 64) unresolved at a time. COUNT > 0 sends that many
records; COUNT = 0 sends until standard input closes (the test closes it to stop the load).
Every record's outcome is printed, and flushed, as soon as the producer learns it:

    ack PARTITION OFFSET INDEX      acknowledged at PARTITION/OFFSET
    fail INDEX ERROR                not acknowledged (the exception's class name)
    done ACKED FAILED               the last line, after every outcome

retries=0: a failure is reported, not retried, so an `ack` line is exactly one
acknowledged produce, and `fail` lines show the errors the broker answered. Idempotence is
off because ringlog does not serve InitProducerId (docs/kafka-protocol.md).
"""

import sys
import threading

from kafka import KafkaProducer

PADDING = b"p" * 40


def main():
    if len(sys.argv) not in (4, 5):
        print(__doc__)
        sys.exit(2)
    bootstrap, topic, count = sys.argv[1], sys.argv[2], int(sys.argv[3])
    in_flight = int(sys.argv[4]) if len(sys.argv) == 5 else 64
    producer = KafkaProducer(
        bootstrap_servers=bootstrap,
        acks="all",
        retries=0,
        enable_idempotence=False,
        linger_ms=2,
        request_timeout_ms=30000,
        client_id="acked-producer",
    )
    stop = threading.Event()
    if count == 0:

        def wait_for_eof():
            sys.stdin.read()
            stop.set()

        threading.Thread(target=wait_for_eof, daemon=True).start()
    slots = threading.Semaphore(in_flight)
    lock = threading.Lock()
    totals = {"acked": 0, "failed": 0}

    def report(line, outcome):
        with lock:
            totals[outcome] += 1
            sys.stdout.write(line + "\n")
            sys.stdout.flush()
        slots.release()

    def on_ack(index, metadata):
        report("ack %d %d %d" % (metadata.partition, metadata.offset, index), "acked")

    def on_fail(index, error):
        report("fail %d %s" % (index, type(error).__name__), "failed")

    index = 0
    while (count > 0 and index < count) or (count == 0 and not stop.is_set()):
        slots.acquire()
        key = b"k-%d" % index
        value = b"v-%d-" % index + PADDING
        future = producer.send(topic, key=key, value=value)
        future.add_callback(lambda metadata, index=index: on_ack(index, metadata))
        future.add_errback(lambda error, index=index: on_fail(index, error))
        index += 1
    producer.flush()
    for _ in range(in_flight):
        slots.acquire()
    with lock:
        sys.stdout.write("done %d %d\n" % (totals["acked"], totals["failed"]))
        sys.stdout.flush()
    producer.close(timeout=5)


if __name__ == "__main__":
    main()
