//! A node: the shard threads and the control-plane thread, started and stopped together.
//!
//! Start order: listeners are bound on the calling thread (so a busy port fails the start
//! with its address), the topic registry is loaded (and interrupted deletions finished) once,
//! then each shard thread creates its own log and ring (a ring belongs to the thread that
//! submits to it), opens the partitions it owns, pins itself to a CPU and reports its ring's
//! descriptor; once all have, every shard gets every ring's descriptor (the targets of its
//! wake-ups) and starts serving; then the control plane starts. Stop:
//! SIGTERM/SIGINT (caught on the control-plane thread) or [`Node::stop`] raise the stop
//! flag; each shard sees it within one loop wake-up, stops accepting, answers what it can,
//! waits for commits in flight and closes its log.

use std::net::SocketAddr;
use std::os::fd::{OwnedFd, RawFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::thread::JoinHandle;

use socket2::{Domain, Protocol, Socket, Type};

use crate::config::Config;
use crate::error::{Error, Result};
use crate::forward::Mesh;
use crate::metrics::Metrics;
use crate::partitions::{load_registry, SharedRegistry};
use crate::shard::Shard;

/// Backlog of each listening socket.
const LISTEN_BACKLOG: i32 = 1024;

/// A running node.
pub struct Node {
    shards: Vec<JoinHandle<Result<()>>>,
    control: Option<JoinHandle<()>>,
    stop: Arc<AtomicBool>,
    metrics: Arc<Metrics>,
    listen: SocketAddr,
    http_listen: SocketAddr,
}

impl Node {
    /// Binds the listeners, starts the shards and the control plane. Returns once every
    /// shard has opened its logs and listens.
    pub fn start(mut config: Config) -> Result<Node> {
        config.validate()?;
        refuse_busy_listen(config.listen)?;
        let first = bind_reuseport(config.listen)?;
        let listen = local_address(&first, config.listen)?;
        config.listen = listen;
        let http =
            std::net::TcpListener::bind(config.http_listen).map_err(|source| Error::Listen {
                address: config.http_listen,
                source,
            })?;
        let http_listen = local_address(
            &Socket::from(http.try_clone().map_err(|source| Error::Listen {
                address: config.http_listen,
                source,
            })?),
            config.http_listen,
        )?;
        let config = Arc::new(config);
        let stop = Arc::new(AtomicBool::new(false));
        let metrics = Arc::new(Metrics::default());
        metrics.shards_total.store(config.cores, Ordering::Relaxed);
        let mut listeners = vec![OwnedFd::from(first)];
        for _ in 1..config.cores {
            listeners.push(OwnedFd::from(bind_reuseport(listen)?));
        }
        // A cluster node (one shard, checked by `Config::validate`) listens for replicas.
        let mut replication_listener = match &config.cluster {
            Some(cluster) => {
                let address = cluster
                    .node(cluster.node_id)
                    .map(|node| node.replication)
                    .ok_or_else(|| Error::ConfigInvalid {
                        reason: "cluster.node_id is not in cluster.nodes".to_string(),
                    })?;
                refuse_busy_listen(address)?;
                Some(OwnedFd::from(bind_reuseport(address)?))
            }
            None => None,
        };
        let registry = load_registry(&config)?;
        let mesh = Arc::new(Mesh::new(config.cores));
        let cpus = match &config.cpus {
            Some(cpus) => cpus
                .iter()
                .map(|&id| core_affinity::CoreId { id })
                .collect(),
            None => core_affinity::get_core_ids().unwrap_or_default(),
        };
        let mut starting = Vec::new();
        for (index, listener) in listeners.into_iter().enumerate() {
            let shared = Shared {
                config: config.clone(),
                stop: stop.clone(),
                metrics: metrics.clone(),
                registry: registry.clone(),
                mesh: mesh.clone(),
                cpu: (!cpus.is_empty()).then(|| cpus[index % cpus.len()]),
            };
            let replication = if index == 0 {
                replication_listener.take()
            } else {
                None
            };
            match spawn_shard(index, (listener, replication), shared) {
                Ok(shard) => starting.push(shard),
                Err(error) => {
                    // Dropping the senders tells the shards already open to close again.
                    stop.store(true, Ordering::Relaxed);
                    let handles: Vec<_> = starting.into_iter().map(|s| s.handle).collect();
                    for handle in handles {
                        let _ = handle.join();
                    }
                    return Err(error);
                }
            }
        }
        let ring_fds: Vec<RawFd> = starting.iter().map(|shard| shard.ring_fd).collect();
        let mut shards = Vec::new();
        for shard in starting {
            // A shard that ended meanwhile reports its error through its handle.
            let _ = shard.go.send(ring_fds.clone());
            shards.push(shard.handle);
        }
        let control = spawn_control(http, stop.clone(), metrics.clone())?;
        tracing::info!(%listen, %http_listen, cores = config.cores, "ringlog node serving");
        Ok(Node {
            shards,
            control: Some(control),
            stop,
            metrics,
            listen,
            http_listen,
        })
    }

    /// The Kafka-protocol address (with the port the OS chose if the config said 0).
    pub fn listen_address(&self) -> SocketAddr {
        self.listen
    }

    /// The HTTP control-plane address.
    pub fn http_address(&self) -> SocketAddr {
        self.http_listen
    }

    /// The node's metrics.
    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.metrics
    }

    /// Asks every thread to stop (what SIGTERM does).
    pub fn stop(&self) {
        self.stop.store(true, Ordering::Relaxed);
    }

    /// Waits until every shard has stopped (after a signal or [`Node::stop`]), then stops
    /// the control plane. Returns the first shard's fatal error, if any.
    pub fn wait(mut self) -> Result<()> {
        let mut first_error = None;
        for (index, shard) in self.shards.drain(..).enumerate() {
            let result = shard.join().unwrap_or_else(|_| {
                Err(Error::Thread {
                    name: format!("shard-{index}"),
                    detail: "panicked".to_string(),
                })
            });
            if let Err(error) = result {
                tracing::error!(shard = index, %error, "shard stopped with an error");
                first_error.get_or_insert(error);
            }
        }
        self.stop.store(true, Ordering::Relaxed);
        if let Some(control) = self.control.take() {
            let _ = control.join();
        }
        first_error.map_or(Ok(()), Err)
    }
}

/// Starts a node with `config` and serves until SIGTERM or SIGINT.
pub fn run(config: Config) -> Result<()> {
    Node::start(config)?.wait()
}

/// Fails with EADDRINUSE if any socket already listens on `address`. The shards' listeners
/// use SO_REUSEPORT, which lets a second process of the same user bind the same port and
/// silently take a share of its connections (clients then see topics come and go). A plain
/// bind, without SO_REUSEPORT, fails when anything listens there, as Kafka's own bind does.
/// It is released before the shards bind, so a process that binds in between is not caught;
/// port 0 always gets a fresh port and is not checked.
fn refuse_busy_listen(address: SocketAddr) -> Result<()> {
    if address.port() == 0 {
        return Ok(());
    }
    std::net::TcpListener::bind(address)
        .map(drop)
        .map_err(|source| Error::Listen { address, source })
}

fn bind_reuseport(address: SocketAddr) -> Result<Socket> {
    let listen_error = |source| Error::Listen { address, source };
    let socket = Socket::new(
        Domain::for_address(address),
        Type::STREAM,
        Some(Protocol::TCP),
    )
    .map_err(listen_error)?;
    socket.set_reuse_address(true).map_err(listen_error)?;
    socket.set_reuse_port(true).map_err(listen_error)?;
    socket.set_tcp_nodelay(true).map_err(listen_error)?;
    socket.bind(&address.into()).map_err(listen_error)?;
    socket.listen(LISTEN_BACKLOG).map_err(listen_error)?;
    Ok(socket)
}

fn local_address(socket: &Socket, configured: SocketAddr) -> Result<SocketAddr> {
    let listen_error = |source| Error::Listen {
        address: configured,
        source,
    };
    let address = socket.local_addr().map_err(listen_error)?;
    address.as_socket().ok_or_else(|| {
        listen_error(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            "not an IP address",
        ))
    })
}

/// What every shard thread shares.
struct Shared {
    config: Arc<Config>,
    stop: Arc<AtomicBool>,
    metrics: Arc<Metrics>,
    registry: SharedRegistry,
    mesh: Arc<Mesh>,
    /// The CPU to pin the shard to (none if the process may not know its CPUs).
    cpu: Option<core_affinity::CoreId>,
}

/// A shard thread that has opened its log and waits for the other rings' descriptors.
struct Starting {
    handle: JoinHandle<Result<()>>,
    ring_fd: RawFd,
    go: mpsc::SyncSender<Vec<RawFd>>,
}

fn spawn_shard(
    index: usize,
    listener: (OwnedFd, Option<OwnedFd>),
    shared: Shared,
) -> Result<Starting> {
    let (ready_sender, ready_receiver) = mpsc::sync_channel::<Result<RawFd>>(1);
    let (go_sender, go_receiver) = mpsc::sync_channel::<Vec<RawFd>>(1);
    let name = format!("shard-{index}");
    let thread_error = |detail: String| Error::Thread {
        name: format!("shard-{index}"),
        detail,
    };
    let handle = std::thread::Builder::new()
        .name(name)
        .spawn(move || {
            let Shared {
                config,
                stop,
                metrics,
                registry,
                mesh,
                cpu,
            } = shared;
            let opened = Shard::open(index, listener, config, stop, metrics, (registry, mesh));
            let mut shard = match opened {
                Ok(mut shard) => {
                    let _ = ready_sender.send(Ok(shard.ring_fd()));
                    shard
                }
                Err(error) => {
                    let _ = ready_sender.send(Err(error));
                    return Ok(());
                }
            };
            // After the log is open: its housekeeper thread keeps the default affinity.
            pin(index, cpu);
            let Ok(ring_fds) = go_receiver.recv() else {
                return Ok(());
            };
            shard.connect(ring_fds);
            shard.run()
        })
        .map_err(|error| thread_error(error.to_string()))?;
    match ready_receiver.recv() {
        Ok(Ok(ring_fd)) => Ok(Starting {
            handle,
            ring_fd,
            go: go_sender,
        }),
        Ok(Err(error)) => {
            let _ = handle.join();
            Err(error)
        }
        Err(_) => Err(thread_error("ended before it was ready".to_string())),
    }
}

/// Pins the calling shard thread to `cpu`; a failure is logged and the shard runs unpinned.
fn pin(index: usize, cpu: Option<core_affinity::CoreId>) {
    match cpu {
        Some(cpu) if core_affinity::set_for_current(cpu) => {
            tracing::debug!(shard = index, cpu = cpu.id, "shard pinned");
        }
        Some(cpu) => {
            tracing::warn!(
                shard = index,
                cpu = cpu.id,
                "cannot pin the shard; running unpinned"
            );
        }
        None => tracing::warn!(shard = index, "CPUs unknown; the shard runs unpinned"),
    }
}

/// The control-plane thread: a current-thread tokio runtime serving HTTP and waiting for
/// SIGTERM/SIGINT or the stop flag.
fn spawn_control(
    http: std::net::TcpListener,
    stop: Arc<AtomicBool>,
    metrics: Arc<Metrics>,
) -> Result<JoinHandle<()>> {
    let thread_error = |detail: String| Error::Thread {
        name: "control".to_string(),
        detail,
    };
    http.set_nonblocking(true)
        .map_err(|error| thread_error(error.to_string()))?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .enable_time()
        .build()
        .map_err(|error| thread_error(error.to_string()))?;
    // Signal handlers are installed before the node reports that it serves, so that a
    // SIGTERM right after start is never the default action (exit without a clean stop).
    let signals = runtime.block_on(async {
        use tokio::signal::unix::{signal, SignalKind};
        Ok::<_, std::io::Error>((
            signal(SignalKind::terminate())?,
            signal(SignalKind::interrupt())?,
        ))
    });
    let (mut terminate, mut interrupt) =
        signals.map_err(|error| thread_error(error.to_string()))?;
    std::thread::Builder::new()
        .name("control".to_string())
        .spawn(move || {
            runtime.block_on(async move {
                let Ok(listener) = tokio::net::TcpListener::from_std(http) else {
                    stop.store(true, Ordering::Relaxed);
                    return;
                };
                let server = tokio::spawn(crate::http::serve(listener, metrics));
                let mut tick = tokio::time::interval(std::time::Duration::from_millis(50));
                loop {
                    tokio::select! {
                        _ = terminate.recv() => break,
                        _ = interrupt.recv() => break,
                        _ = tick.tick() => if stop.load(Ordering::Relaxed) { break },
                    }
                }
                tracing::info!("stopping");
                stop.store(true, Ordering::Relaxed);
                server.abort();
            });
        })
        .map_err(|error| thread_error(error.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    // A port another node already listens on (with SO_REUSEPORT, as shards do) is refused
    // with EADDRINUSE instead of being shared; a free port and port 0 are accepted.
    #[test]
    fn busy_listen_address_is_refused() {
        let loopback: SocketAddr = "127.0.0.1:0".parse().unwrap();
        refuse_busy_listen(loopback).unwrap();
        let running = bind_reuseport(loopback).unwrap();
        let address = local_address(&running, loopback).unwrap();
        match refuse_busy_listen(address) {
            Err(Error::Listen { source, .. }) => {
                assert_eq!(source.kind(), std::io::ErrorKind::AddrInUse, "{source}");
            }
            other => panic!("expected AddrInUse, got {other:?}"),
        }
        drop(running);
        refuse_busy_listen(address).unwrap();
    }
}
