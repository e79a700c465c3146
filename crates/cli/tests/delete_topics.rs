//! DeleteTopics against `ringlog serve` as a real process: a deleted topic disappears from
//! Metadata, its producers and fetchers get UNKNOWN_TOPIC_OR_PARTITION, its directories are
//! gone, and a topic created again under the same name starts empty — also after a restart,
//! and also when a crash interrupted the deletion half way.

mod kafka_client;

use std::path::Path;

use kafka_protocol::messages::delete_topics_request::DeleteTopicState;
use kafka_protocol::messages::{
    ApiKey, DeleteTopicsRequest, DeleteTopicsResponse, MetadataRequest, MetadataResponse,
};

use kafka_client::{batch, topic, Client, Server};

const UNKNOWN_TOPIC_OR_PARTITION: i16 = 3;
const TOPIC_ALREADY_EXISTS: i16 = 36;

fn delete_topic(client: &mut Client, name: &str) -> anyhow::Result<i16> {
    let request = DeleteTopicsRequest::default()
        .with_timeout_ms(5000)
        .with_topics(vec![
            DeleteTopicState::default().with_name(Some(topic(name)))
        ]);
    let response: DeleteTopicsResponse = client.call(ApiKey::DeleteTopics, 6, &request)?;
    Ok(response.responses[0].error_code)
}

fn topic_names(client: &mut Client) -> anyhow::Result<Vec<String>> {
    let request = MetadataRequest::default().with_topics(None);
    let metadata: MetadataResponse = client.call(ApiKey::Metadata, 12, &request)?;
    Ok(metadata
        .topics
        .iter()
        .filter_map(|topic| topic.name.as_ref().map(|name| name.0.to_string()))
        .collect())
}

/// Entries of a directory (names), sorted; empty if it does not exist.
fn entries(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .filter_map(|entry| entry.ok()?.file_name().into_string().ok())
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

// Create, produce, delete: Metadata no longer lists the topic, produce and fetch answer
// UNKNOWN_TOPIC_OR_PARTITION, the partition directories and the trash are gone, another
// topic is untouched. Creating it again gives empty partitions, before and after a restart.
#[test]
fn deleted_topic_is_gone_and_recreated_empty() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let data = dir.path().join("data");
    let server = Server::start(&data, "")?;
    let mut client = server.client()?;
    assert_eq!(client.create_topic("doomed", 2)?, 0);
    assert_eq!(client.create_topic("kept", 1)?, 0);
    for round in 0..10 {
        assert_eq!(client.produce("doomed", round % 2, batch(3, "d"), -1)?.0, 0);
    }
    assert_eq!(client.produce("kept", 0, batch(4, "k"), -1)?, (0, 0));
    assert_eq!(delete_topic(&mut client, "doomed")?, 0);
    assert_eq!(
        delete_topic(&mut client, "doomed")?,
        UNKNOWN_TOPIC_OR_PARTITION
    );
    assert_eq!(topic_names(&mut client)?, vec!["kept".to_string()]);
    assert_eq!(
        client.produce("doomed", 0, batch(1, "x"), 1)?.0,
        UNKNOWN_TOPIC_OR_PARTITION
    );
    assert_eq!(
        client.fetch("doomed", 0, 0, 0)?.0,
        UNKNOWN_TOPIC_OR_PARTITION
    );
    let listed = entries(&data);
    assert!(
        !listed.iter().any(|name| name.starts_with("doomed-")),
        "{listed:?}"
    );
    assert!(entries(&data.join("deleted")).is_empty());

    assert_eq!(client.create_topic("doomed", 2)?, 0);
    for partition in 0..2 {
        assert_eq!(client.fetch("doomed", partition, 0, 0)?.1, 0, "empty again");
    }
    assert_eq!(client.produce("doomed", 1, batch(2, "n"), -1)?, (0, 0));
    let (code, high_watermark, _) = client.fetch("kept", 0, 0, 0)?;
    assert_eq!((code, high_watermark), (0, 4));
    drop(client);
    drop(server);

    let server = Server::start(&data, "")?;
    let mut client = server.client()?;
    assert_eq!(topic_names(&mut client)?, vec!["doomed", "kept"]);
    assert_eq!(client.fetch("doomed", 0, 0, 0)?.1, 0);
    assert_eq!(client.fetch("doomed", 1, 0, 0)?.1, 2);
    assert_eq!(client.fetch("kept", 0, 0, 0)?.1, 4);
    Ok(())
}

// A deletion that a crash interrupted after moving one partition directory into the trash
// (but before the registry was written) is finished at the next start: the topic is gone,
// not back with a missing partition, and its name can be used again for an empty topic.
#[test]
fn interrupted_deletion_is_finished_at_start() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let data = dir.path().join("data");
    let mut server = Server::start(&data, "")?;
    let mut client = server.client()?;
    assert_eq!(client.create_topic("half", 2)?, 0);
    assert_eq!(client.produce("half", 0, batch(5, "h"), -1)?, (0, 0));
    assert_eq!(client.produce("half", 1, batch(5, "h"), -1)?, (0, 0));
    drop(client);
    assert!(server.terminate()?, "{}", server.log_text());

    // What DeleteTopics leaves after its first rename: one partition in the trash, the
    // registry unchanged.
    let registry: serde_json::Value =
        serde_json::from_slice(&std::fs::read(data.join("topics.json"))?)?;
    let topic_id = registry["topics"]["half"]["topic_id"]
        .as_str()
        .expect("topic id")
        .to_string();
    let trash = data.join("deleted").join(&topic_id);
    std::fs::create_dir_all(&trash)?;
    std::fs::rename(data.join("half-0"), trash.join("half-0"))?;

    let server = Server::start(&data, "")?;
    let mut client = server.client()?;
    assert!(topic_names(&mut client)?.is_empty());
    let listed = entries(&data);
    assert!(
        !listed.iter().any(|name| name.starts_with("half-")),
        "{listed:?}"
    );
    assert!(entries(&data.join("deleted")).is_empty());
    assert_eq!(client.fetch("half", 1, 0, 0)?.0, UNKNOWN_TOPIC_OR_PARTITION);
    assert_eq!(client.create_topic("half", 2)?, 0);
    assert_eq!(client.create_topic("half", 2)?, TOPIC_ALREADY_EXISTS);
    assert_eq!(client.fetch("half", 1, 0, 0)?.1, 0);
    Ok(())
}
