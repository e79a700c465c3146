//! The control plane's HTTP endpoint: `GET /metrics` (Prometheus text) and `GET /health`.
//!
//! A deliberately small HTTP/1.1 responder on tokio's `TcpListener`: it reads one request
//! head (at most [`REQUEST_HEAD_BYTES_MAX`] bytes, within [`REQUEST_TIMEOUT`]), answers it and
//! closes the connection. No keep-alive, no request bodies: scrapers and probes need neither.

use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use crate::metrics::Metrics;

/// Largest request head read.
const REQUEST_HEAD_BYTES_MAX: usize = 8 * 1024;
/// How long a client may take to send its request head.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

/// Serves until the task is dropped.
pub(crate) async fn serve(listener: TcpListener, metrics: Arc<Metrics>) {
    loop {
        let Ok((stream, _peer)) = listener.accept().await else {
            continue;
        };
        let metrics = metrics.clone();
        tokio::spawn(async move {
            let _ = tokio::time::timeout(REQUEST_TIMEOUT, answer(stream, &metrics)).await;
        });
    }
}

async fn answer(mut stream: TcpStream, metrics: &Metrics) -> std::io::Result<()> {
    let mut head = vec![0u8; REQUEST_HEAD_BYTES_MAX];
    let mut filled = 0;
    while !head[..filled]
        .windows(4)
        .any(|window| window == b"\r\n\r\n")
    {
        if filled == head.len() {
            return respond(
                &mut stream,
                "431 Request Header Fields Too Large",
                "text/plain",
                "",
            )
            .await;
        }
        let read = stream.read(&mut head[filled..]).await?;
        if read == 0 {
            return Ok(());
        }
        filled += read;
    }
    let line = head[..filled]
        .split(|byte| *byte == b'\r')
        .next()
        .unwrap_or(&[]);
    let line = String::from_utf8_lossy(line);
    let mut words = line.split(' ');
    let (method, path) = (words.next().unwrap_or(""), words.next().unwrap_or(""));
    if method != "GET" {
        return respond(
            &mut stream,
            "405 Method Not Allowed",
            "text/plain",
            "GET only\n",
        )
        .await;
    }
    match path {
        "/metrics" => {
            let body = metrics.render();
            respond(&mut stream, "200 OK", "text/plain; version=0.0.4", &body).await
        }
        "/health" if metrics.healthy() => {
            respond(&mut stream, "200 OK", "text/plain", "ok\n").await
        }
        "/health" => {
            respond(
                &mut stream,
                "503 Service Unavailable",
                "text/plain",
                "starting or stopping\n",
            )
            .await
        }
        _ => respond(&mut stream, "404 Not Found", "text/plain", "not found\n").await,
    }
}

async fn respond(
    stream: &mut TcpStream,
    status: &str,
    content_type: &str,
    body: &str,
) -> std::io::Result<()> {
    let head = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\n\
         Connection: close\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).await?;
    stream.write_all(body.as_bytes()).await?;
    stream.shutdown().await
}
