//! The runners connected to this server process: one tunnel each. A turn's host call goes out through the
//! session's runner's tunnel and its frames come back to the caller; a call still open when the tunnel closes
//! sees its stream end without a `Done` (the runner went away), and the caller decides what that means. With
//! replicas, a runner connected to another replica is reached through that one (`POST /v1/runners/{id}/calls`,
//! its frames streamed back as JSON lines).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use tokio::sync::{mpsc, watch};
use tokio::task::AbortHandle;

use super::wire::{Call, FromRunner, ToRunner};
use crate::cluster::Cluster;
use crate::ids::SessionId;
use crate::record::now_us;
use crate::store::Store;

/// How often a call waiting for a runner connected elsewhere looks again.
const LOOK_AGAIN: Duration = Duration::from_secs(1);

/// Frames a tunnel may queue toward its runner before a caller waits.
const OUTBOX: usize = 256;

pub struct RunnerHub {
    store: Store,
    /// How this process is named in `runners.connected_to` (its replica id, or `local`).
    process: String,
    /// The other replicas, where a runner may be connected instead.
    cluster: Option<Arc<Cluster>>,
    /// This server's bearer token, which the other replicas also take.
    token: Option<String>,
    tunnels: Mutex<HashMap<String, Tunnel>>,
    /// Ticks whenever a runner connects, for calls waiting for theirs.
    connected: watch::Sender<u64>,
    next_call: AtomicU64,
}

struct Tunnel {
    /// Tells one connection of a runner from the next.
    generation: u64,
    outbox: mpsc::Sender<ToRunner>,
    calls: HashMap<u64, mpsc::UnboundedSender<FromRunner>>,
}

/// A runner's open tunnel, as its connection task holds it.
pub struct Attached {
    pub generation: u64,
    /// Frames for the runner, in order.
    pub outbox: mpsc::Receiver<ToRunner>,
}

/// A call sent to a runner: its frames, until `Done` (or the end of the stream: the runner went away).
pub struct CallStream {
    pub id: u64,
    pub frames: mpsc::UnboundedReceiver<FromRunner>,
    /// The relay through another replica, when the runner is connected there.
    relay: Option<AbortHandle>,
}

/// Where a runner can be reached from here.
#[derive(Clone, Debug, PartialEq)]
pub enum Location {
    Here,
    /// Through the replica at this address.
    Replica(String),
    Offline,
}

impl RunnerHub {
    pub fn new(store: Store, cluster: Option<Arc<Cluster>>, token: Option<String>) -> RunnerHub {
        let process = cluster.as_ref().map(|c| c.id().to_string()).unwrap_or_else(|| "local".into());
        RunnerHub {
            store,
            process,
            cluster,
            token,
            tunnels: Mutex::default(),
            connected: watch::channel(0).0,
            next_call: AtomicU64::new(1),
        }
    }

    /// A runner's tunnel opened: it replaces an older one of the same runner (whose calls end).
    pub async fn attach(&self, runner: &str) -> Attached {
        let generation = self.next_call.fetch_add(1, Ordering::Relaxed);
        let (outbox, rx) = mpsc::channel(OUTBOX);
        let old = self
            .tunnels
            .lock()
            .unwrap()
            .insert(runner.to_string(), Tunnel { generation, outbox, calls: HashMap::new() });
        if old.is_some() {
            tracing::info!(runner, "a runner reconnected; calls on its old connection end");
        }
        if let Err(e) = self.store.runner_connected(runner, Some(&self.process), &self.process, now_us()).await {
            tracing::warn!(runner, error = %e, "could not record that a runner connected");
        }
        self.connected.send_modify(|n| *n += 1);
        tracing::info!(runner, "runner connected");
        Attached { generation, outbox: rx }
    }

    /// A runner's tunnel closed: its open calls end.
    pub async fn detach(&self, runner: &str, generation: u64) {
        let removed = {
            let mut tunnels = self.tunnels.lock().unwrap();
            match tunnels.get(runner) {
                Some(t) if t.generation == generation => tunnels.remove(runner).is_some(),
                _ => false,
            }
        };
        if removed {
            tracing::warn!(runner, "runner disconnected");
            if let Err(e) = self.store.runner_connected(runner, None, &self.process, now_us()).await {
                tracing::warn!(runner, error = %e, "could not record that a runner disconnected");
            }
        }
    }

    /// A frame from the runner, to the call it answers.
    pub fn deliver(&self, runner: &str, frame: FromRunner) {
        let mut tunnels = self.tunnels.lock().unwrap();
        let Some(tunnel) = tunnels.get_mut(runner) else { return };
        let id = frame.call_id();
        let done = matches!(frame, FromRunner::Done { .. });
        if let Some(caller) = tunnel.calls.get(&id) {
            let _ = caller.send(frame);
        }
        if done {
            tunnel.calls.remove(&id);
        }
    }

    /// Whether `runner` has a tunnel to this process.
    pub fn is_connected(&self, runner: &str) -> bool {
        self.tunnels.lock().unwrap().contains_key(runner)
    }

    /// Where `runner` is connected, if anywhere.
    pub async fn locate(&self, runner: &str) -> Location {
        if self.is_connected(runner) {
            return Location::Here;
        }
        let Some(cluster) = &self.cluster else { return Location::Offline };
        match cluster.runner_replica(runner).await {
            Ok(Some(url)) if url != cluster.url() => Location::Replica(url),
            Ok(_) => Location::Offline,
            Err(e) => {
                tracing::warn!(runner, error = %e, "cannot tell where a runner is connected");
                Location::Offline
            }
        }
    }

    /// Waits until `runner` is connected here or to another live replica.
    pub async fn until_reachable(&self, runner: &str) {
        let mut ticks = self.connected.subscribe();
        while self.locate(runner).await == Location::Offline {
            let _ = tokio::time::timeout(LOOK_AGAIN, ticks.changed()).await;
        }
    }

    /// Sends a call to `runner` wherever it is connected; None when it is not (any more).
    pub async fn open(&self, runner: &str, session: &SessionId, call: Call) -> Option<CallStream> {
        match self.locate(runner).await {
            Location::Here => self.call(runner, session, call).await,
            Location::Replica(url) => self.relay(&url, runner, session, call).await,
            Location::Offline => None,
        }
    }

    /// Stops waiting for a call (and tells the runner).
    pub async fn close(&self, runner: &str, stream: &CallStream) {
        match &stream.relay {
            // The relaying replica sees its answer dropped and cancels the call there.
            Some(relay) => relay.abort(),
            None => self.cancel(runner, stream.id).await,
        }
    }

    /// A call through the replica at `url`, whose tunnel `runner` is on.
    async fn relay(&self, url: &str, runner: &str, session: &SessionId, call: Call) -> Option<CallStream> {
        let client = self.cluster.as_ref()?.client();
        let mut request = client
            .post(format!("{url}/v1/runners/{runner}/calls"))
            .json(&serde_json::json!({"session": session.as_str(), "call": call}));
        if let Some(token) = &self.token {
            request = request.bearer_auth(token);
        }
        let answer = match request.send().await {
            Ok(a) if a.status().is_success() => a,
            Ok(a) => {
                tracing::warn!(
                    runner,
                    replica = url,
                    status = a.status().as_u16(),
                    "a replica did not relay a runner call"
                );
                return None;
            }
            Err(e) => {
                tracing::warn!(runner, replica = url, error = %e, "cannot reach the replica a runner is connected to");
                return None;
            }
        };
        let (tx, frames) = mpsc::unbounded_channel();
        let task = tokio::spawn(async move {
            let mut body = answer.bytes_stream();
            let mut buf = Vec::new();
            while let Some(Ok(chunk)) = body.next().await {
                buf.extend_from_slice(&chunk);
                while let Some(end) = buf.iter().position(|b| *b == b'\n') {
                    let line: Vec<u8> = buf.drain(..=end).collect();
                    match serde_json::from_slice::<FromRunner>(&line) {
                        Ok(frame) => {
                            let _ = tx.send(frame);
                        }
                        Err(e) => tracing::warn!(error = %e, "a relayed runner frame does not parse"),
                    }
                }
            }
        });
        Some(CallStream { id: 0, frames, relay: Some(task.abort_handle()) })
    }

    /// Sends a call to `runner` through its tunnel here; None when it has no tunnel here.
    pub async fn call(&self, runner: &str, session: &SessionId, call: Call) -> Option<CallStream> {
        let id = self.next_call.fetch_add(1, Ordering::Relaxed);
        let (tx, frames) = mpsc::unbounded_channel();
        let outbox = {
            let mut tunnels = self.tunnels.lock().unwrap();
            let tunnel = tunnels.get_mut(runner)?;
            tunnel.calls.insert(id, tx);
            tunnel.outbox.clone()
        };
        let frame = ToRunner::Call { id, session: session.to_string(), call: Box::new(call) };
        outbox.send(frame).await.ok()?;
        Some(CallStream { id, frames, relay: None })
    }

    /// Tells the runner a call is no longer wanted.
    pub async fn cancel(&self, runner: &str, id: u64) {
        let outbox = {
            let mut tunnels = self.tunnels.lock().unwrap();
            let Some(tunnel) = tunnels.get_mut(runner) else { return };
            tunnel.calls.remove(&id);
            tunnel.outbox.clone()
        };
        let _ = outbox.send(ToRunner::Cancel { id }).await;
    }
}
