//! Helpers shared by the client's tests: the in-memory broker and a connected client.
#![allow(dead_code)] // Each test binary uses its own subset.

pub mod broker;

use ringlog_client::{Client, ClientOptions};

pub use broker::TestBroker;

/// A client of `broker` with default options.
pub fn connect(broker: &TestBroker) -> Client {
    Client::connect(&broker.address(), ClientOptions::default()).expect("connect")
}
