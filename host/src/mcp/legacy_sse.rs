//! MCP's older HTTP+SSE transport (protocol 2024-11-05), for servers that offer only that: the client GETs an
//! event stream whose first `endpoint` event names the URL to POST its messages to; the server's messages arrive
//! as `message` events on the stream. rmcp 3 no longer ships this client, so this is the transport only — the
//! messages are rmcp's own types, and the session on top is rmcp's. Chosen, as Omnigent does, for a `url` whose
//! path ends in `/sse`.

use std::pin::Pin;
use std::task::{Context, Poll};

use futures::Stream;
use futures::channel::mpsc;
use reqwest::header::{ACCEPT, CONTENT_TYPE, HeaderMap, HeaderValue};
use rmcp::service::{RoleClient, RxJsonRpcMessage, TxJsonRpcMessage};

use crate::sse_reader::SseReader;

/// Whether a server URL speaks the older transport (its path's last segment is `sse`).
pub fn is_legacy(url: &str) -> bool {
    reqwest::Url::parse(url).is_ok_and(|u| u.path().trim_end_matches('/').ends_with("/sse"))
}

/// The server's messages; the stream's reader stops when this is dropped.
pub struct Incoming {
    messages: mpsc::UnboundedReceiver<RxJsonRpcMessage<RoleClient>>,
    reader: tokio::task::JoinHandle<()>,
}

impl Stream for Incoming {
    type Item = RxJsonRpcMessage<RoleClient>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        Pin::new(&mut self.messages).poll_next(cx)
    }
}

impl Drop for Incoming {
    fn drop(&mut self) {
        self.reader.abort();
    }
}

/// Opens the event stream and waits for the endpoint; returns where to send messages and what arrives.
pub async fn open(
    url: &str,
    headers: HeaderMap,
    http: &reqwest::Client,
) -> Result<(mpsc::UnboundedSender<TxJsonRpcMessage<RoleClient>>, Incoming), String> {
    let base = reqwest::Url::parse(url).map_err(|e| format!("{url}: {e}"))?;
    let response = http
        .get(base.clone())
        .headers(headers.clone())
        .header(ACCEPT, HeaderValue::from_static("text/event-stream"))
        .send()
        .await
        .and_then(reqwest::Response::error_for_status)
        .map_err(|e| format!("{url}: {e}"))?;
    let mut events = SseReader::new(response);
    let endpoint = loop {
        match events.next().await {
            Ok(Some(frame)) if frame.event.as_deref() == Some("endpoint") => {
                break base.join(frame.data.trim()).map_err(|e| format!("{url}: a bad endpoint event: {e}"))?;
            }
            Ok(Some(_)) => continue,
            Ok(None) => return Err(format!("{url}: the event stream ended before it named its endpoint")),
            Err(e) => return Err(format!("{url}: {e}")),
        }
    };
    let (to_client, messages) = mpsc::unbounded();
    let reader = tokio::spawn(async move {
        while let Ok(Some(frame)) = events.next().await {
            if frame.event.as_deref().is_some_and(|e| e != "message") {
                continue;
            }
            match serde_json::from_str(&frame.data) {
                Ok(message) => {
                    if to_client.unbounded_send(message).is_err() {
                        return;
                    }
                }
                Err(e) => tracing::warn!(error = %e, "an MCP server sent a message that is not JSON-RPC; skipped"),
            }
        }
    });
    let (to_server, mut outgoing) = mpsc::unbounded::<TxJsonRpcMessage<RoleClient>>();
    let http = http.clone();
    tokio::spawn(async move {
        use futures::StreamExt;
        while let Some(message) = outgoing.next().await {
            let sent = http
                .post(endpoint.clone())
                .headers(headers.clone())
                .header(CONTENT_TYPE, HeaderValue::from_static("application/json"))
                .json(&message)
                .send()
                .await
                .and_then(reqwest::Response::error_for_status);
            if let Err(e) = sent {
                tracing::warn!(error = %e, "sending to an MCP server failed; the connection ends");
                return;
            }
        }
    });
    Ok((to_server, Incoming { messages, reader }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_url_ending_in_sse_is_the_older_transport() {
        assert!(is_legacy("http://127.0.0.1:8000/sse"));
        assert!(is_legacy("https://example.test/mcp/sse/"));
        assert!(!is_legacy("http://127.0.0.1:8000/mcp"));
        assert!(!is_legacy("http://127.0.0.1:8000/sse-tools"));
    }
}
