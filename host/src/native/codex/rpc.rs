//! A JSON-RPC client of `codex app-server` over its unix socket (a WebSocket): requests with answers,
//! notifications, and the server's own requests (approvals), which the turn answers.

use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use futures::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::sync::{mpsc, oneshot};
use tokio_tungstenite::tungstenite::Message;

/// Something the app-server sent that is not an answer to us.
#[derive(Debug)]
pub enum Incoming {
    Notification {
        method: String,
        params: Value,
    },
    /// A request the server waits on (an approval): answer with [`Rpc::respond`].
    Request {
        id: Value,
        method: String,
        params: Value,
    },
    /// The connection ended.
    Closed,
}

#[derive(Debug, thiserror::Error)]
pub enum RpcError {
    #[error("the codex app-server answered {code}: {message}")]
    Server { code: i64, message: String },
    #[error("the connection to the codex app-server closed")]
    Closed,
    #[error("cannot reach the codex app-server: {0}")]
    Connect(String),
}

type Pending = Arc<Mutex<HashMap<u64, oneshot::Sender<Result<Value, RpcError>>>>>;

/// A connected client. Cloning shares the connection.
#[derive(Clone)]
pub struct Rpc {
    out: mpsc::UnboundedSender<Message>,
    pending: Pending,
    next: Arc<AtomicU64>,
}

impl Rpc {
    /// Connects, and says hello (`initialize` + `initialized`). Everything the server sends that is not an
    /// answer goes to the returned receiver.
    pub async fn connect(socket: &Path) -> Result<(Rpc, mpsc::UnboundedReceiver<Incoming>), RpcError> {
        let stream = tokio::net::UnixStream::connect(socket)
            .await
            .map_err(|e| RpcError::Connect(format!("{}: {e}", socket.display())))?;
        let (ws, _) = tokio_tungstenite::client_async("ws://localhost/", stream)
            .await
            .map_err(|e| RpcError::Connect(e.to_string()))?;
        let (mut sink, mut source) = ws.split();
        let (out, mut outgoing) = mpsc::unbounded_channel::<Message>();
        let (incoming_tx, incoming) = mpsc::unbounded_channel();
        let pending: Pending = Arc::default();
        tokio::spawn(async move {
            while let Some(m) = outgoing.recv().await {
                if sink.send(m).await.is_err() {
                    break;
                }
            }
        });
        let answers = pending.clone();
        tokio::spawn(async move {
            while let Some(Ok(message)) = source.next().await {
                let Message::Text(text) = message else { continue };
                let Ok(v) = serde_json::from_str::<Value>(&text) else { continue };
                dispatch(v, &answers, &incoming_tx);
            }
            for (_, waiter) in answers.lock().unwrap().drain() {
                let _ = waiter.send(Err(RpcError::Closed));
            }
            let _ = incoming_tx.send(Incoming::Closed);
        });
        let rpc = Rpc { out, pending, next: Arc::new(AtomicU64::new(1)) };
        let hello = json!({"clientInfo": {"name": "omnigent", "version": env!("CARGO_PKG_VERSION")},
            "capabilities": {"experimentalApi": true}});
        rpc.request("initialize", hello).await?;
        rpc.notify("initialized", Value::Null);
        Ok((rpc, incoming))
    }

    pub async fn request(&self, method: &str, params: Value) -> Result<Value, RpcError> {
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = oneshot::channel();
        self.pending.lock().unwrap().insert(id, tx);
        let message = json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params});
        if self.out.send(Message::Text(message.to_string().into())).is_err() {
            self.pending.lock().unwrap().remove(&id);
            return Err(RpcError::Closed);
        }
        rx.await.unwrap_or(Err(RpcError::Closed))
    }

    pub fn notify(&self, method: &str, params: Value) {
        let mut message = json!({"jsonrpc": "2.0", "method": method});
        if !params.is_null() {
            message["params"] = params;
        }
        let _ = self.out.send(Message::Text(message.to_string().into()));
    }

    /// Answers one of the server's requests.
    pub fn respond(&self, id: &Value, result: Value) {
        let message = json!({"jsonrpc": "2.0", "id": id, "result": result});
        let _ = self.out.send(Message::Text(message.to_string().into()));
    }
}

fn dispatch(v: Value, answers: &Pending, incoming: &mpsc::UnboundedSender<Incoming>) {
    let method = v["method"].as_str().map(str::to_string);
    match (method, v.get("id")) {
        (Some(method), Some(id)) => {
            let _ = incoming.send(Incoming::Request { id: id.clone(), method, params: v["params"].clone() });
        }
        (Some(method), None) => {
            let _ = incoming.send(Incoming::Notification { method, params: v["params"].clone() });
        }
        (None, Some(id)) => {
            let Some(id) = id.as_u64() else { return };
            let Some(waiter) = answers.lock().unwrap().remove(&id) else { return };
            let answer = match v.get("error") {
                Some(e) => Err(RpcError::Server {
                    code: e["code"].as_i64().unwrap_or(0),
                    message: e["message"].as_str().unwrap_or_default().to_string(),
                }),
                None => Ok(v["result"].clone()),
            };
            let _ = waiter.send(answer);
        }
        (None, None) => {}
    }
}
