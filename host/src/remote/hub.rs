//! The runners connected to this server process: one tunnel each. A turn's host call goes out through the
//! session's runner's tunnel and its frames come back to the caller; a call still open when the tunnel closes
//! sees its stream end without a `Done` (the runner went away), and the caller decides what that means.

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use tokio::sync::{mpsc, watch};

use super::wire::{Call, FromRunner, ToRunner};
use crate::ids::SessionId;
use crate::record::now_us;
use crate::store::Store;

/// Frames a tunnel may queue toward its runner before a caller waits.
const OUTBOX: usize = 256;

pub struct RunnerHub {
    store: Store,
    /// How this process is named in `runners.connected_to` (its replica id, or `local`).
    process: String,
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
}

impl RunnerHub {
    pub fn new(store: Store, process: String) -> RunnerHub {
        RunnerHub {
            store,
            process,
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

    /// Sends a call to `runner`; None when it has no tunnel here.
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
        Some(CallStream { id, frames })
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

    /// Waits until `runner` has a tunnel here.
    pub async fn until_connected(&self, runner: &str) {
        let mut ticks = self.connected.subscribe();
        while !self.is_connected(runner) {
            if ticks.changed().await.is_err() {
                return;
            }
        }
    }
}
