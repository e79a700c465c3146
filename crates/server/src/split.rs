//! Which shard owns a partition, and how a request that touches partitions of several shards
//! is split into one part per owner and its answers put back together (pure: no I/O).
//!
//! A request's partitions are addressed by their position `(topic_index, partition_index)`
//! in the request. Each part is a sub-request with the same topics (in the same order) but
//! only the partitions its shard owns, in request order, plus the list of their positions.
//! An owner answers a part with a sub-response whose partitions are in the part's order, so
//! the `n`-th answer of a part belongs at the part's `n`-th position.
//!
//! Invariants: every position of the request is in exactly one part; parts are ordered by
//! shard; assembling requires every part's answers (one per position) and yields a response
//! with exactly the request's shape.

use std::collections::BTreeMap;

use ringlog_kafka::messages::list_offsets_response::{
    ListOffsetsPartitionResponse, ListOffsetsTopicResponse,
};
use ringlog_kafka::messages::produce_response::{PartitionProduceResponse, TopicProduceResponse};
use ringlog_kafka::messages::{
    FetchRequest, ListOffsetsRequest, ListOffsetsResponse, ProduceRequest, ProduceResponse,
    TopicName,
};
use ringlog_kafka::{ErrorCode, FetchPartitionResponse, FetchResponse, FetchTopicResponse};

/// Where a partition sits in a request: `(topic_index, partition_index)`.
pub(crate) type Position = (usize, usize);

/// The shard that owns partition `partition` of `topic` on a node of `cores` shards.
///
/// The partitions of one topic go round-robin over the shards, starting at a shard chosen by
/// a hash of the topic's name (FNV-1a, fixed: the same on every start and every build), so
/// a topic of `cores` partitions has one on each shard and different topics start on
/// different shards.
pub(crate) fn owner(topic: &str, partition: u32, cores: usize) -> usize {
    assert!(cores >= 1, "cores={cores}");
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in topic.bytes() {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    let cores = cores as u64;
    let shard = (hash % cores + u64::from(partition) % cores) % cores;
    usize::try_from(shard).expect("below cores")
}

/// One shard's share of a request.
#[derive(Debug)]
pub(crate) struct Part<R> {
    /// The shard that serves it.
    pub shard: usize,
    /// The sub-request: the request's topics, with only this shard's partitions.
    pub request: R,
    /// Where each of the sub-request's partitions sits in the request, in order.
    pub positions: Vec<Position>,
}

/// Groups the positions of a request by shard. `shard_of(topic_index, partition_index)`
/// names the serving shard of each partition (the local shard for unknown ones, which then
/// answers their error).
fn group(
    shape: &[usize],
    mut shard_of: impl FnMut(usize, usize) -> usize,
) -> BTreeMap<usize, Vec<Position>> {
    let mut groups: BTreeMap<usize, Vec<Position>> = BTreeMap::new();
    for (topic_index, &count) in shape.iter().enumerate() {
        for partition_index in 0..count {
            let shard = shard_of(topic_index, partition_index);
            groups
                .entry(shard)
                .or_default()
                .push((topic_index, partition_index));
        }
    }
    groups
}

/// Builds each group's sub-request with `build(positions)`.
fn parts<R>(
    groups: BTreeMap<usize, Vec<Position>>,
    mut build: impl FnMut(&[Position]) -> R,
) -> Vec<Part<R>> {
    groups
        .into_iter()
        .map(|(shard, positions)| Part {
            shard,
            request: build(&positions),
            positions,
        })
        .collect()
}

/// For each topic of the request, the partition indexes a part keeps, in order.
fn kept_by_topic(positions: &[Position], topic_count: usize) -> Vec<Vec<usize>> {
    let mut kept = vec![Vec::new(); topic_count];
    for &(topic_index, partition_index) in positions {
        kept[topic_index].push(partition_index);
    }
    kept
}

/// Splits a Produce by owner. `shard_of(topic, partition)` names the serving shard.
pub(crate) fn split_produce(
    request: &ProduceRequest,
    mut shard_of: impl FnMut(&str, i32) -> usize,
) -> Vec<Part<ProduceRequest>> {
    let topics = &request.topic_data;
    let shape: Vec<usize> = topics.iter().map(|t| t.partition_data.len()).collect();
    let groups = group(&shape, |t, p| {
        shard_of(&topics[t].name, topics[t].partition_data[p].index)
    });
    parts(groups, |positions| {
        let kept = kept_by_topic(positions, topics.len());
        let topic_data = topics
            .iter()
            .zip(kept)
            .map(|(topic, indexes)| {
                let mut kept = topic.clone();
                kept.partition_data = indexes
                    .iter()
                    .map(|&p| topic.partition_data[p].clone())
                    .collect();
                kept
            })
            .collect();
        let mut part = request.clone();
        part.topic_data = topic_data;
        part
    })
}

/// Splits a Fetch by owner.
pub(crate) fn split_fetch(
    request: &FetchRequest,
    mut shard_of: impl FnMut(&str, i32) -> usize,
) -> Vec<Part<FetchRequest>> {
    let topics = &request.topics;
    let shape: Vec<usize> = topics.iter().map(|t| t.partitions.len()).collect();
    let groups = group(&shape, |t, p| {
        shard_of(&topics[t].topic, topics[t].partitions[p].partition)
    });
    parts(groups, |positions| {
        let kept = kept_by_topic(positions, topics.len());
        let topics = topics
            .iter()
            .zip(kept)
            .map(|(topic, indexes)| {
                let mut kept = topic.clone();
                kept.partitions = indexes
                    .iter()
                    .map(|&p| topic.partitions[p].clone())
                    .collect();
                kept
            })
            .collect();
        let mut part = request.clone();
        part.topics = topics;
        part
    })
}

/// Splits a ListOffsets by owner.
pub(crate) fn split_list_offsets(
    request: &ListOffsetsRequest,
    mut shard_of: impl FnMut(&str, i32) -> usize,
) -> Vec<Part<ListOffsetsRequest>> {
    let topics = &request.topics;
    let shape: Vec<usize> = topics.iter().map(|t| t.partitions.len()).collect();
    let groups = group(&shape, |t, p| {
        shard_of(&topics[t].name, topics[t].partitions[p].partition_index)
    });
    parts(groups, |positions| {
        let kept = kept_by_topic(positions, topics.len());
        let topics = topics
            .iter()
            .zip(kept)
            .map(|(topic, indexes)| {
                let mut kept = topic.clone();
                kept.partitions = indexes
                    .iter()
                    .map(|&p| topic.partitions[p].clone())
                    .collect();
                kept
            })
            .collect();
        let mut part = request.clone();
        part.topics = topics;
        part
    })
}

/// The names of a request's topics and their partition counts: what assembly needs.
#[derive(Clone, Debug)]
pub(crate) struct Shape {
    pub topics: Vec<(TopicName, usize)>,
}

impl Shape {
    pub fn of_produce(request: &ProduceRequest) -> Shape {
        let topics = request.topic_data.iter();
        Shape {
            topics: topics
                .map(|t| (t.name.clone(), t.partition_data.len()))
                .collect(),
        }
    }

    pub fn of_fetch(request: &FetchRequest) -> Shape {
        let topics = request.topics.iter();
        Shape {
            topics: topics
                .map(|t| (t.topic.clone(), t.partitions.len()))
                .collect(),
        }
    }

    pub fn of_list_offsets(request: &ListOffsetsRequest) -> Shape {
        let topics = request.topics.iter();
        Shape {
            topics: topics
                .map(|t| (t.name.clone(), t.partitions.len()))
                .collect(),
        }
    }
}

/// Puts every part's answers (in part order) at their positions. Panics if a part's answer
/// count differs from its position count or a position stays empty (our bug: every owner
/// answers every partition of its part).
fn place<A>(shape: &Shape, answered: Vec<(Vec<Position>, Vec<A>)>) -> Vec<Vec<A>> {
    let mut slots: Vec<Vec<Option<A>>> = shape
        .topics
        .iter()
        .map(|(_, count)| (0..*count).map(|_| None).collect())
        .collect();
    for (positions, answers) in answered {
        assert_eq!(
            positions.len(),
            answers.len(),
            "a part answered {} of {} partitions",
            answers.len(),
            positions.len()
        );
        for ((topic_index, partition_index), answer) in positions.into_iter().zip(answers) {
            let slot = &mut slots[topic_index][partition_index];
            assert!(
                slot.is_none(),
                "position ({topic_index}, {partition_index}) answered twice"
            );
            *slot = Some(answer);
        }
    }
    slots
        .into_iter()
        .map(|topic| {
            topic
                .into_iter()
                .map(|slot| slot.expect("every position answered"))
                .collect()
        })
        .collect()
}

/// Assembles a Produce response from its parts' responses.
pub(crate) fn assemble_produce(
    shape: &Shape,
    answered: Vec<(Vec<Position>, ProduceResponse)>,
) -> ProduceResponse {
    let flat = answered
        .into_iter()
        .map(|(positions, response)| {
            let answers: Vec<PartitionProduceResponse> = response
                .responses
                .into_iter()
                .flat_map(|topic| topic.partition_responses)
                .collect();
            (positions, answers)
        })
        .collect();
    let placed = place(shape, flat);
    let responses = shape
        .topics
        .iter()
        .zip(placed)
        .map(|((name, _), answers)| {
            TopicProduceResponse::default()
                .with_name(name.clone())
                .with_partition_responses(answers)
        })
        .collect();
    ProduceResponse::default().with_responses(responses)
}

/// Assembles a Fetch response from its parts' responses.
pub(crate) fn assemble_fetch(
    shape: &Shape,
    answered: Vec<(Vec<Position>, FetchResponse)>,
) -> FetchResponse {
    let flat = answered
        .into_iter()
        .map(|(positions, response)| {
            let answers: Vec<FetchPartitionResponse> = response
                .topics
                .into_iter()
                .flat_map(|topic| topic.partitions)
                .collect();
            (positions, answers)
        })
        .collect();
    let placed = place(shape, flat);
    let topics = shape
        .topics
        .iter()
        .zip(placed)
        .map(|((name, _), partitions)| FetchTopicResponse {
            topic: name.clone(),
            partitions,
        })
        .collect();
    FetchResponse {
        throttle_time_ms: 0,
        error_code: ErrorCode::None,
        session_id: 0,
        topics,
    }
}

/// Assembles a ListOffsets response from its parts' responses.
pub(crate) fn assemble_list_offsets(
    shape: &Shape,
    answered: Vec<(Vec<Position>, ListOffsetsResponse)>,
) -> ListOffsetsResponse {
    let flat = answered
        .into_iter()
        .map(|(positions, response)| {
            let answers: Vec<ListOffsetsPartitionResponse> = response
                .topics
                .into_iter()
                .flat_map(|topic| topic.partitions)
                .collect();
            (positions, answers)
        })
        .collect();
    let placed = place(shape, flat);
    let topics = shape
        .topics
        .iter()
        .zip(placed)
        .map(|((name, _), partitions)| {
            ListOffsetsTopicResponse::default()
                .with_name(name.clone())
                .with_partitions(partitions)
        })
        .collect();
    ListOffsetsResponse::default().with_topics(topics)
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use ringlog_kafka::messages::fetch_request::FetchTopic;
    use ringlog_kafka::messages::list_offsets_request::ListOffsetsTopic;
    use ringlog_kafka::messages::produce_request::{PartitionProduceData, TopicProduceData};
    use ringlog_kafka::StrBytes;

    fn name(text: &str) -> TopicName {
        TopicName(StrBytes::from_string(text.to_string()))
    }

    fn produce_of(topics: &[(&str, &[i32])]) -> ProduceRequest {
        let topic_data = topics
            .iter()
            .map(|(topic, partitions)| {
                TopicProduceData::default()
                    .with_name(name(topic))
                    .with_partition_data(
                        partitions
                            .iter()
                            .map(|&p| {
                                PartitionProduceData::default()
                                    .with_index(p)
                                    .with_records(Some(Bytes::from(vec![u8::try_from(p).unwrap()])))
                            })
                            .collect(),
                    )
            })
            .collect();
        ProduceRequest::default()
            .with_acks(-1)
            .with_topic_data(topic_data)
    }

    // The owner is stable, in range, and spreads a topic's partitions over every shard.
    #[test]
    fn owner_spreads_a_topic_round_robin() {
        for cores in 1..=8 {
            let owners: Vec<usize> = (0..u32::try_from(cores).unwrap())
                .map(|p| owner("orders", p, cores))
                .collect();
            let mut sorted = owners.clone();
            sorted.sort_unstable();
            assert_eq!(sorted, (0..cores).collect::<Vec<_>>(), "cores={cores}");
        }
        assert_eq!(owner("orders", 3, 4), owner("orders", 3, 4));
        assert_eq!(owner("anything", 7, 1), 0);
    }

    // A Produce over two topics is split into one part per shard; each part keeps the
    // topics (in order), only its partitions (in order), and their positions.
    #[test]
    fn produce_split_keeps_order_and_positions() {
        let request = produce_of(&[("a", &[0, 1, 2, 3]), ("b", &[5, 4])]);
        let parts = split_produce(&request, |_, p| usize::try_from(p % 2).unwrap());
        assert_eq!(parts.len(), 2);
        assert_eq!(parts[0].shard, 0);
        assert_eq!(parts[0].positions, vec![(0, 0), (0, 2), (1, 1)]);
        assert_eq!(parts[1].positions, vec![(0, 1), (0, 3), (1, 0)]);
        let indexes = |part: &Part<ProduceRequest>| -> Vec<Vec<i32>> {
            let topics = part.request.topic_data.iter();
            topics
                .map(|t| t.partition_data.iter().map(|p| p.index).collect())
                .collect()
        };
        assert_eq!(indexes(&parts[0]), vec![vec![0, 2], vec![4]]);
        assert_eq!(indexes(&parts[1]), vec![vec![1, 3], vec![5]]);
        assert_eq!(parts[1].request.acks, -1);
        let records = &parts[1].request.topic_data[1].partition_data[0].records;
        assert_eq!(records.as_deref(), Some(&[5u8][..]));
    }

    // A request whose partitions all belong to one shard is one part with every position.
    #[test]
    fn single_owner_is_one_part() {
        let request = produce_of(&[("a", &[0, 1]), ("b", &[0])]);
        let parts = split_produce(&request, |_, _| 3);
        assert_eq!(parts.len(), 1);
        assert_eq!(parts[0].shard, 3);
        assert_eq!(parts[0].positions, vec![(0, 0), (0, 1), (1, 0)]);
    }

    /// The answer an owner would give to a produce part: base offset = 100 * partition.
    fn answer_produce(part: &Part<ProduceRequest>) -> ProduceResponse {
        let responses = part
            .request
            .topic_data
            .iter()
            .map(|topic| {
                TopicProduceResponse::default()
                    .with_name(topic.name.clone())
                    .with_partition_responses(
                        topic
                            .partition_data
                            .iter()
                            .map(|p| {
                                PartitionProduceResponse::default()
                                    .with_index(p.index)
                                    .with_base_offset(i64::from(p.index) * 100)
                            })
                            .collect(),
                    )
            })
            .collect();
        ProduceResponse::default().with_responses(responses)
    }

    // Answers assembled in any order of parts come out in the request's order.
    #[test]
    fn produce_assembles_in_request_order() {
        let request = produce_of(&[("a", &[0, 1, 2, 3]), ("b", &[5, 4])]);
        let shape = Shape::of_produce(&request);
        let parts = split_produce(&request, |_, p| usize::try_from(p % 3).unwrap());
        let mut answered: Vec<_> = parts
            .iter()
            .map(|part| (part.positions.clone(), answer_produce(part)))
            .collect();
        answered.reverse();
        let response = assemble_produce(&shape, answered);
        let got: Vec<(String, Vec<(i32, i64)>)> = response
            .responses
            .iter()
            .map(|t| {
                let partitions = t.partition_responses.iter();
                (
                    t.name.0.to_string(),
                    partitions.map(|p| (p.index, p.base_offset)).collect(),
                )
            })
            .collect();
        assert_eq!(
            got,
            vec![
                ("a".into(), vec![(0, 0), (1, 100), (2, 200), (3, 300)]),
                ("b".into(), vec![(5, 500), (4, 400)]),
            ]
        );
    }

    // Fetch and ListOffsets split and assemble the same way.
    #[test]
    fn fetch_and_list_offsets_round_trip() {
        use ringlog_kafka::messages::fetch_request::FetchPartition;
        use ringlog_kafka::messages::list_offsets_request::ListOffsetsPartition;
        let fetch = FetchRequest::default()
            .with_max_wait_ms(7)
            .with_topics(vec![FetchTopic::default()
                .with_topic(name("f"))
                .with_partitions(
                    (0..4)
                        .map(|p| FetchPartition::default().with_partition(p))
                        .collect(),
                )]);
        let parts = split_fetch(&fetch, |_, p| usize::try_from(p % 2).unwrap());
        assert_eq!(parts.len(), 2);
        assert_eq!(parts[1].request.max_wait_ms, 7);
        let answered = parts
            .iter()
            .map(|part| {
                let partitions = part.request.topics[0].partitions.iter();
                let response = FetchResponse {
                    throttle_time_ms: 0,
                    error_code: ErrorCode::None,
                    session_id: 0,
                    topics: vec![FetchTopicResponse {
                        topic: name("f"),
                        partitions: partitions
                            .map(|p| FetchPartitionResponse::error(p.partition, ErrorCode::None))
                            .collect(),
                    }],
                };
                (part.positions.clone(), response)
            })
            .collect();
        let response = assemble_fetch(&Shape::of_fetch(&fetch), answered);
        let order: Vec<i32> = response.topics[0]
            .partitions
            .iter()
            .map(|p| p.partition_index)
            .collect();
        assert_eq!(order, vec![0, 1, 2, 3]);

        let list = ListOffsetsRequest::default().with_topics(vec![ListOffsetsTopic::default()
            .with_name(name("l"))
            .with_partitions(
                [2, 0, 1]
                    .iter()
                    .map(|&p| ListOffsetsPartition::default().with_partition_index(p))
                    .collect(),
            )]);
        let parts = split_list_offsets(&list, |_, p| usize::try_from(p).unwrap());
        assert_eq!(parts.len(), 3);
        let answered = parts
            .iter()
            .map(|part| {
                let partitions = part.request.topics[0].partitions.iter();
                let response = ListOffsetsResponse::default().with_topics(vec![
                    ListOffsetsTopicResponse::default().with_partitions(
                        partitions
                            .map(|p| {
                                ListOffsetsPartitionResponse::default()
                                    .with_partition_index(p.partition_index)
                            })
                            .collect(),
                    ),
                ]);
                (part.positions.clone(), response)
            })
            .collect();
        let response = assemble_list_offsets(&Shape::of_list_offsets(&list), answered);
        let order: Vec<i32> = response.topics[0]
            .partitions
            .iter()
            .map(|p| p.partition_index)
            .collect();
        assert_eq!(order, vec![2, 0, 1]);
        assert_eq!(response.topics[0].name.0.as_str(), "l");
    }

    // A part that answers fewer partitions than it was given is our bug: it panics.
    #[test]
    #[should_panic(expected = "answered 0 of 2")]
    fn short_answer_panics() {
        let request = produce_of(&[("a", &[0, 1])]);
        let shape = Shape::of_produce(&request);
        let _ = assemble_produce(
            &shape,
            vec![(vec![(0, 0), (0, 1)], ProduceResponse::default())],
        );
    }
}
