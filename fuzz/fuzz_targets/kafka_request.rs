//! Fuzzes Kafka request decoding on arbitrary frames: `frame_length` and `decode_request`
//! must never panic or allocate beyond the frame's real content (libFuzzer's malloc limit
//! reports the latter), record sets of an accepted Produce must be slices of the frame, and
//! whatever is accepted must be answerable: refusals and the responses a server would
//! build from the decoded request encode without error at the request's version.
#![no_main]

use bytes::{Bytes, BytesMut};
use libfuzzer_sys::fuzz_target;
use ringlog_kafka::frame::frame_length;
use ringlog_kafka::messages::produce_response::{PartitionProduceResponse, TopicProduceResponse};
use ringlog_kafka::messages::ProduceResponse;
use ringlog_kafka::{
    api_versions_response, decode_request, encode_fetch_response, encode_refusal, encode_response,
    find_coordinator_error_response, Decoded, ErrorCode, FetchPartitionResponse, FetchResponse,
    FetchTopicResponse, Request, RequestHeader, Response,
};

fuzz_target!(|bytes: &[u8]| {
    if let Ok(Some(size_bytes)) = frame_length(bytes, 1 << 20) {
        assert!((10..=1 << 20).contains(&size_bytes));
    }
    let frame = Bytes::copy_from_slice(bytes);
    match decode_request(frame.clone()) {
        Ok(Decoded::Request { header, request }) => answer(&frame, &header, &request),
        Ok(Decoded::Refused(refusal)) => {
            let mut out = BytesMut::new();
            let size_bytes = encode_refusal(&mut out, &refusal).expect("refusals encode");
            assert_eq!(size_bytes, out.len());
        }
        Err(error) => {
            std::hint::black_box(error.to_string());
        }
    }
});

/// Encodes what a server would answer, from the decoded request alone.
fn answer(frame: &Bytes, header: &RequestHeader, request: &Request) {
    let mut out = BytesMut::new();
    match request {
        Request::ApiVersions(_) => {
            let response = Response::ApiVersions(api_versions_response(ErrorCode::None));
            encode_response(&mut out, header, &response).expect("ApiVersions encodes");
        }
        Request::Produce(produce) => {
            let frame_range = frame.as_ptr() as usize..frame.as_ptr() as usize + frame.len();
            let mut response = ProduceResponse::default();
            for topic in &produce.topic_data {
                let mut topic_response =
                    TopicProduceResponse::default().with_name(topic.name.clone());
                for partition in &topic.partition_data {
                    if let Some(records) = partition
                        .records
                        .as_ref()
                        .filter(|records| !records.is_empty())
                    {
                        assert!(frame_range.contains(&(records.as_ptr() as usize)));
                        assert!(records.as_ptr() as usize + records.len() <= frame_range.end);
                        let _ = ringlog_batch::validate(records);
                    }
                    topic_response.partition_responses.push(
                        PartitionProduceResponse::default()
                            .with_index(partition.index)
                            .with_error_code(ErrorCode::NotLeaderOrFollower.code()),
                    );
                }
                response.responses.push(topic_response);
            }
            encode_response(&mut out, header, &Response::Produce(response))
                .expect("Produce encodes");
        }
        Request::Fetch(fetch) => {
            let topics = fetch
                .topics
                .iter()
                .map(|topic| FetchTopicResponse {
                    topic: topic.topic.clone(),
                    partitions: topic
                        .partitions
                        .iter()
                        .map(|partition| FetchPartitionResponse {
                            records: vec![frame.clone()],
                            ..FetchPartitionResponse::error(partition.partition, ErrorCode::None)
                        })
                        .collect(),
                })
                .collect();
            let response = FetchResponse {
                throttle_time_ms: 0,
                error_code: ErrorCode::None,
                session_id: 0,
                topics,
            };
            let mut parts = Vec::new();
            let size_bytes = encode_fetch_response(header, &response, &mut out, &mut parts)
                .expect("Fetch encodes");
            assert_eq!(size_bytes, parts.iter().map(Bytes::len).sum::<usize>());
        }
        Request::FindCoordinator(request) => {
            let response = find_coordinator_error_response(
                request,
                header.api_version,
                ErrorCode::CoordinatorNotAvailable,
            );
            encode_response(&mut out, header, &Response::FindCoordinator(response))
                .expect("FindCoordinator encodes");
        }
        Request::Metadata(_)
        | Request::ListOffsets(_)
        | Request::CreateTopics(_)
        | Request::DeleteTopics(_) => {
            std::hint::black_box(request.expects_response());
        }
    }
}
