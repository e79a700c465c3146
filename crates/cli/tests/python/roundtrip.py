"""kafka-python against a running `ringlog serve`: create a topic, produce, consume back.

Usage: python3 roundtrip.py BOOTSTRAP TOPIC [RECORDS]

1. KafkaAdminClient creates TOPIC with 4 partitions (CreateTopics).
2. KafkaProducer(acks='all') sends RECORDS keyed records (default 10,000), each with two
   headers, spread over the 4 partitions by key; after flush() every future must have
   succeeded, and the offsets it reports are recorded per partition.
3. KafkaConsumer without a group (group_id=None) is assigned the 4 partitions, reads from
   the earliest offset until it has every record (or a deadline passes), and the records of
   each partition must equal what was sent to it: keys, values, headers and offsets, in order.

Prints one summary line, `roundtrip ok: N records, partitions a/b/c/d`, and exits 0; on any
mismatch prints what differs and exits 1.

The producer is created with enable_idempotence=False: kafka-python turns idempotence on by
default for brokers of 3.0 and later, which needs InitProducerId, an API ringlog does not
serve (docs/kafka-protocol.md). The broker version itself is detected from ApiVersions.
"""

import sys
import time

from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition
from kafka.admin import NewTopic

PARTITIONS = 4
DEADLINE_SECS = 60


def record(index):
    """The key, value and headers of record `index`."""
    key = b"key-%d" % index
    value = b"value %d " % index + b"x" * (index % 13)
    headers = [("trace", b"t-%d" % index), ("source", b"roundtrip")]
    return key, value, headers


def create_topic(bootstrap, topic):
    admin = KafkaAdminClient(bootstrap_servers=bootstrap, client_id="roundtrip-admin")
    try:
        admin.create_topics([NewTopic(topic, PARTITIONS, 1)])
    finally:
        admin.close()


def produce(bootstrap, topic, count):
    """Sends `count` records; returns {partition: [(offset, key, value, headers)]}."""
    producer = KafkaProducer(
        bootstrap_servers=bootstrap,
        acks="all",
        enable_idempotence=False,
        linger_ms=5,
        client_id="roundtrip-producer",
    )
    futures = []
    for index in range(count):
        key, value, headers = record(index)
        futures.append((index, producer.send(topic, key=key, value=value, headers=headers)))
    producer.flush()
    sent = {partition: [] for partition in range(PARTITIONS)}
    failures = 0
    for index, future in futures:
        try:
            metadata = future.get(timeout=DEADLINE_SECS)
        except Exception as error:  # every failure is reported, not only the first
            failures += 1
            if failures <= 5:
                print("record %d not acknowledged: %r" % (index, error))
            continue
        key, value, headers = record(index)
        sent[metadata.partition].append((metadata.offset, key, value, headers))
    producer.close()
    if failures:
        print("%d of %d records not acknowledged" % (failures, count))
        sys.exit(1)
    for records in sent.values():
        records.sort(key=lambda item: item[0])
    return sent


def consume(bootstrap, topic, expected):
    """Reads the 4 partitions from the earliest offset until `expected` records arrived."""
    consumer = KafkaConsumer(
        bootstrap_servers=bootstrap,
        group_id=None,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        consumer_timeout_ms=5000,
        client_id="roundtrip-consumer",
    )
    consumer.assign([TopicPartition(topic, partition) for partition in range(PARTITIONS)])
    received = {partition: [] for partition in range(PARTITIONS)}
    total = 0
    deadline = time.monotonic() + DEADLINE_SECS
    while total < expected and time.monotonic() < deadline:
        # Iteration stops after consumer_timeout_ms without records; loop to the deadline.
        for message in consumer:
            headers = [(name, bytes(value)) for name, value in message.headers]
            received[message.partition].append(
                (message.offset, message.key, message.value, headers)
            )
            total += 1
            if total >= expected:
                break
    consumer.close()
    return received


def compare(sent, received):
    """Returns a list of differences, per partition, empty when everything matches."""
    problems = []
    for partition in range(PARTITIONS):
        want, got = sent[partition], received[partition]
        if len(want) != len(got):
            problems.append(
                "partition %d: sent %d records, consumed %d" % (partition, len(want), len(got))
            )
        for position, (expected, actual) in enumerate(zip(want, got)):
            if expected != actual:
                problems.append(
                    "partition %d record %d: sent %r, consumed %r"
                    % (partition, position, expected, actual)
                )
                break
        offsets = [item[0] for item in got]
        if offsets != list(range(len(got))):
            problems.append("partition %d: offsets not 0..%d in order" % (partition, len(got)))
    return problems


def main():
    if len(sys.argv) not in (3, 4):
        print(__doc__)
        sys.exit(2)
    bootstrap, topic = sys.argv[1], sys.argv[2]
    count = int(sys.argv[3]) if len(sys.argv) == 4 else 10_000
    create_topic(bootstrap, topic)
    sent = produce(bootstrap, topic, count)
    empty = [partition for partition, records in sent.items() if not records]
    if empty:
        print("no record was sent to partitions %s: keys not spread" % empty)
        sys.exit(1)
    received = consume(bootstrap, topic, count)
    problems = compare(sent, received)
    if problems:
        for problem in problems[:20]:
            print(problem)
        sys.exit(1)
    spread = "/".join(str(len(received[partition])) for partition in range(PARTITIONS))
    print("roundtrip ok: %d records, partitions %s" % (count, spread))


if __name__ == "__main__":
    main()
