//! A mock LLM vendor on 127.0.0.1: speaks OpenAI Chat Completions (`POST /v1/chat/completions`), OpenAI Responses
//! (`POST /v1/responses`, streaming, as the Codex CLI uses it) and Anthropic Messages (`POST /v1/messages`, query
//! string allowed), streaming and not, from a script of replies. It records
//! every request so tests can check what the product sent. The product cannot tell it from the vendor.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use serde_json::{Value, json};

/// One scripted answer.
#[derive(Clone, Debug)]
pub enum Reply {
    /// Assistant text, streamed in small chunks.
    Text(String),
    /// Tool calls `(name, arguments JSON)`, optionally after some text.
    Tools { text: String, calls: Vec<(String, Value)> },
    /// An HTTP error with this status and message.
    Error(u16, String),
    /// 429 with `retry-after` seconds.
    RateLimited(f64),
    /// Text streamed one chunk per `delay` (for interrupt tests).
    Slow { chunks: Vec<String>, delay: Duration },
    /// Some text, then the stream ends before the response finished (a dropped connection).
    Cut(String),
    /// A reasoning summary (streamed on the Responses wire only, as OpenAI does), then the text.
    Reasoned { summary: Vec<String>, text: String },
}

impl Reply {
    pub fn text(t: &str) -> Reply {
        Reply::Text(t.to_string())
    }

    pub fn tool(name: &str, arguments: Value) -> Reply {
        Reply::Tools { text: String::new(), calls: vec![(name.to_string(), arguments)] }
    }
}

/// A request the mock received.
#[derive(Clone, Debug)]
pub struct Recorded {
    pub path: String,
    pub headers: HeaderMap,
    pub body: Value,
}

#[derive(Default)]
struct MockState {
    replies: Mutex<VecDeque<Reply>>,
    requests: Mutex<Vec<Recorded>>,
    /// Numbers Anthropic message and tool-use ids, so each is unique within a conversation (as the vendor's are).
    next_id: std::sync::atomic::AtomicU64,
}

/// Claude Code's side requests (a session title, answered as JSON) use no script step: the test scripts only the
/// conversation. They ask for a structured output format.
fn is_side_request(body: &Value) -> bool {
    body["output_config"]["format"].is_object()
}

pub struct MockLlm {
    /// `http://127.0.0.1:<port>`: OpenAI base_url is `{url}/v1`, Anthropic base_url is `{url}`.
    pub url: String,
    state: Arc<MockState>,
    _server: tokio::task::JoinHandle<()>,
}

impl MockLlm {
    pub async fn start(replies: Vec<Reply>) -> MockLlm {
        let state = Arc::new(MockState { replies: Mutex::new(replies.into()), ..MockState::default() });
        let app = Router::new()
            .route("/v1/chat/completions", post(openai))
            .route("/v1/messages", post(anthropic))
            .route("/v1/responses", post(responses))
            .with_state(state.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let server = tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        MockLlm { url, state, _server: server }
    }

    pub fn push(&self, reply: Reply) {
        self.state.replies.lock().unwrap().push_back(reply);
    }

    pub fn requests(&self) -> Vec<Recorded> {
        self.state.requests.lock().unwrap().clone()
    }

    pub fn openai_base(&self) -> String {
        format!("{}/v1", self.url)
    }
}

async fn take(state: &MockState, request: Request) -> Result<(Value, Reply), Response> {
    let path = request.uri().to_string();
    let headers = request.headers().clone();
    let bytes = axum::body::to_bytes(request.into_body(), 16 << 20).await.unwrap_or_default();
    let body: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    state.requests.lock().unwrap().push(Recorded { path, headers, body: body.clone() });
    let reply = state.replies.lock().unwrap().pop_front();
    match reply {
        Some(r) => Ok((body, r)),
        None => Err((StatusCode::INTERNAL_SERVER_ERROR, "mock LLM: no scripted reply left").into_response()),
    }
}

/// What a successful reply streams.
#[derive(Default)]
struct Script {
    text_chunks: Vec<String>,
    calls: Vec<(String, Value)>,
    delay: Option<Duration>,
    /// End the stream before the response finishes.
    cut: bool,
    /// Reasoning summary pieces (Responses wire).
    summary: Vec<String>,
}

/// Records the request and takes the next reply: an error reply becomes the vendor's error response.
async fn next(state: &MockState, request: Request, anthropic: bool) -> Result<(Value, Script), Response> {
    let (body, reply) = take(state, request).await?;
    if let Some(err) = error_response(&reply, anthropic) {
        return Err(err);
    }
    let script = match reply {
        Reply::Text(t) => Script { text_chunks: chunks(&t), ..Script::default() },
        Reply::Tools { text, calls } => Script { text_chunks: chunks(&text), calls, ..Script::default() },
        Reply::Slow { chunks, delay } => Script { text_chunks: chunks, delay: Some(delay), ..Script::default() },
        Reply::Cut(t) => Script { text_chunks: chunks(&t), cut: true, ..Script::default() },
        Reply::Reasoned { summary, text } => Script { text_chunks: chunks(&text), summary, ..Script::default() },
        Reply::Error(..) | Reply::RateLimited(_) => unreachable!("handled by error_response"),
    };
    Ok((body, script))
}

fn error_response(reply: &Reply, anthropic: bool) -> Option<Response> {
    let (status, message, retry) = match reply {
        Reply::Error(s, m) => (*s, m.clone(), None),
        Reply::RateLimited(after) => (429, "rate limit reached".to_string(), Some(*after)),
        _ => return None,
    };
    let body = if anthropic {
        json!({"type": "error", "error": {"type": if status == 429 { "rate_limit_error" } else { "api_error" }, "message": message}})
    } else {
        json!({"error": {"message": message, "type": "error", "code": status}})
    };
    let mut resp = (StatusCode::from_u16(status).unwrap(), axum::Json(body)).into_response();
    if let Some(after) = retry {
        resp.headers_mut().insert("retry-after", after.to_string().parse().unwrap());
    }
    Some(resp)
}

fn chunks(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let chars: Vec<char> = text.chars().collect();
    for piece in chars.chunks(4) {
        out.push(piece.iter().collect());
    }
    out
}

fn sse(frames: Vec<(Option<&'static str>, Value)>, done: bool, delay: Option<Duration>) -> Response {
    let stream = async_stream::stream! {
        for (event, data) in frames {
            if let Some(d) = delay {
                tokio::time::sleep(d).await;
            }
            let mut frame = String::new();
            if let Some(e) = event {
                frame.push_str(&format!("event: {e}\n"));
            }
            frame.push_str(&format!("data: {data}\n\n"));
            yield Ok::<_, std::io::Error>(frame);
        }
        if done {
            yield Ok("data: [DONE]\n\n".to_string());
        }
    };
    Response::builder().header("content-type", "text/event-stream").body(Body::from_stream(stream)).unwrap()
}

async fn openai(State(state): State<Arc<MockState>>, request: Request) -> Response {
    let (body, Script { text_chunks, calls, delay, cut, .. }) = match next(&state, request, false).await {
        Ok(x) => x,
        Err(r) => return r,
    };
    let model = body["model"].as_str().unwrap_or("mock").to_string();
    let chunk = |delta: Value, finish: Value| {
        json!({"id": "chatcmpl-mock", "object": "chat.completion.chunk", "created": 0, "model": model,
               "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]})
    };
    let full_text: String = text_chunks.concat();
    if body["stream"] != true {
        let tool_calls: Vec<Value> = calls.iter().enumerate().map(|(i, (n, a))| {
            json!({"id": format!("call_mock_{i}"), "type": "function", "function": {"name": n, "arguments": a.to_string()}})
        }).collect();
        let mut message = json!({"role": "assistant", "content": full_text});
        if !tool_calls.is_empty() {
            message["tool_calls"] = tool_calls.into();
        }
        return axum::Json(json!({"id": "chatcmpl-mock", "object": "chat.completion", "model": model,
            "choices": [{"index": 0, "message": message, "finish_reason": if calls.is_empty() { "stop" } else { "tool_calls" }}],
            "usage": {"prompt_tokens": 11, "completion_tokens": 7, "total_tokens": 18}})).into_response();
    }
    let mut frames = vec![(None, chunk(json!({"role": "assistant", "content": ""}), Value::Null))];
    for c in &text_chunks {
        frames.push((None, chunk(json!({"content": c}), Value::Null)));
    }
    for (i, (name, args)) in calls.iter().enumerate() {
        frames.push((
            None,
            chunk(
                json!({"tool_calls": [{"index": i, "id": format!("call_mock_{i}"), "type": "function",
            "function": {"name": name, "arguments": ""}}]}),
                Value::Null,
            ),
        ));
        let args = args.to_string();
        let mid = args.len() / 2;
        let (a, b) = args.split_at(args.char_indices().map(|(i, _)| i).find(|&i| i >= mid).unwrap_or(0));
        for part in [a, b] {
            frames.push((
                None,
                chunk(json!({"tool_calls": [{"index": i, "function": {"arguments": part}}]}), Value::Null),
            ));
        }
    }
    if cut {
        return sse(frames, false, delay);
    }
    let finish = if calls.is_empty() { "stop" } else { "tool_calls" };
    frames.push((None, chunk(json!({}), finish.into())));
    frames.push((
        None,
        json!({"id": "chatcmpl-mock", "object": "chat.completion.chunk", "model": model, "choices": [],
        "usage": {"prompt_tokens": 11, "completion_tokens": 7, "total_tokens": 18}}),
    ));
    sse(frames, true, delay)
}

async fn anthropic(State(state): State<Arc<MockState>>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let bytes = axum::body::to_bytes(body, 16 << 20).await.unwrap_or_default();
    let peek: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    if is_side_request(&peek) {
        let model = peek["model"].as_str().unwrap_or("mock");
        let text = json!({"title": "Mock session"}).to_string();
        return axum::Json(json!({"id": "msg_side", "type": "message", "role": "assistant", "model": model,
            "content": [{"type": "text", "text": text}], "stop_reason": "end_turn",
            "usage": {"input_tokens": 3, "output_tokens": 3}}))
        .into_response();
    }
    let request = Request::from_parts(parts, Body::from(bytes));
    let (body, Script { text_chunks, calls, delay, cut, .. }) = match next(&state, request, true).await {
        Ok(x) => x,
        Err(r) => return r,
    };
    let n = state.next_id.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let message_id = format!("msg_mock_{n}");
    let tool_id = |i: usize| format!("toolu_mock_{n}_{i}");
    let model = body["model"].as_str().unwrap_or("mock").to_string();
    let stop = if calls.is_empty() { "end_turn" } else { "tool_use" };
    if body["stream"] != true {
        let mut content = Vec::new();
        if !text_chunks.is_empty() {
            content.push(json!({"type": "text", "text": text_chunks.concat()}));
        }
        for (i, (n, a)) in calls.iter().enumerate() {
            content.push(json!({"type": "tool_use", "id": tool_id(i), "name": n, "input": a}));
        }
        return axum::Json(
            json!({"id": message_id, "type": "message", "role": "assistant", "model": model, "content": content,
            "stop_reason": stop, "usage": {"input_tokens": 13, "output_tokens": 5}}),
        )
        .into_response();
    }
    let mut frames: Vec<(Option<&'static str>, Value)> = vec![(
        Some("message_start"),
        json!({"type": "message_start", "message": {
        "id": message_id, "type": "message", "role": "assistant", "content": [], "model": model, "stop_reason": null,
        "usage": {"input_tokens": 13, "output_tokens": 1}}}),
    )];
    let mut index = 0;
    if !text_chunks.is_empty() {
        frames.push((
            Some("content_block_start"),
            json!({"type": "content_block_start", "index": index, "content_block": {"type": "text", "text": ""}}),
        ));
        for c in &text_chunks {
            frames.push((
                Some("content_block_delta"),
                json!({"type": "content_block_delta", "index": index, "delta": {"type": "text_delta", "text": c}}),
            ));
        }
        frames.push((Some("content_block_stop"), json!({"type": "content_block_stop", "index": index})));
        index += 1;
    }
    for (i, (name, args)) in calls.iter().enumerate() {
        frames.push((
            Some("content_block_start"),
            json!({"type": "content_block_start", "index": index,
            "content_block": {"type": "tool_use", "id": tool_id(i), "name": name, "input": {}}}),
        ));
        let args = args.to_string();
        let mid = args.char_indices().map(|(i, _)| i).find(|&i| i >= args.len() / 2).unwrap_or(0);
        for part in [&args[..mid], &args[mid..]] {
            frames.push((
                Some("content_block_delta"),
                json!({"type": "content_block_delta", "index": index,
                "delta": {"type": "input_json_delta", "partial_json": part}}),
            ));
        }
        frames.push((Some("content_block_stop"), json!({"type": "content_block_stop", "index": index})));
        index += 1;
    }
    if cut {
        return sse(frames, false, delay);
    }
    frames.push((
        Some("message_delta"),
        json!({"type": "message_delta", "delta": {"stop_reason": stop}, "usage": {"output_tokens": 5}}),
    ));
    frames.push((Some("message_stop"), json!({"type": "message_stop"})));
    sse(frames, false, delay)
}

/// OpenAI Responses, streamed (the Codex CLI's wire). A request without tools is a side request (a title):
/// answered without using a script step.
async fn responses(State(state): State<Arc<MockState>>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let bytes = axum::body::to_bytes(body, 16 << 20).await.unwrap_or_default();
    let peek: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    let side = peek["tools"].as_array().is_none_or(|t| t.is_empty());
    let (text_chunks, calls, summary) = if side {
        (vec![json!({"title": "Mock session"}).to_string()], vec![], vec![])
    } else {
        let request = Request::from_parts(parts, Body::from(bytes));
        match next(&state, request, false).await {
            Ok((_, Script { text_chunks, calls, summary, .. })) => (text_chunks, calls, summary),
            Err(r) => return r,
        }
    };
    let n = state.next_id.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let response_id = format!("resp_mock_{n}");
    let model = peek["model"].as_str().unwrap_or("mock").to_string();
    let mut frames: Vec<(Option<&'static str>, Value)> = vec![(
        Some("response.created"),
        json!({"type": "response.created", "response": {"id": response_id, "object": "response", "status": "in_progress",
            "model": model, "output": []}}),
    )];
    let mut output = Vec::new();
    let mut index = 0;
    if !summary.is_empty() {
        let item_id = format!("rs_mock_{n}");
        let item = json!({"type": "reasoning", "id": item_id, "summary": [{"type": "summary_text",
            "text": summary.concat()}]});
        frames.push((
            Some("response.output_item.added"),
            json!({"type": "response.output_item.added", "output_index": index, "item": {"type": "reasoning",
                "id": item_id, "summary": []}}),
        ));
        for piece in &summary {
            frames.push((
                Some("response.reasoning_summary_text.delta"),
                json!({"type": "response.reasoning_summary_text.delta", "item_id": item_id, "output_index": index,
                    "summary_index": 0, "delta": piece}),
            ));
        }
        frames.push((
            Some("response.output_item.done"),
            json!({"type": "response.output_item.done", "output_index": index, "item": item}),
        ));
        output.push(item);
        index += 1;
    }
    if !text_chunks.is_empty() {
        let item_id = format!("msg_mock_{n}");
        frames.push((
            Some("response.output_item.added"),
            json!({"type": "response.output_item.added", "output_index": index, "item": {"type": "message",
                "id": item_id, "role": "assistant", "status": "in_progress", "content": []}}),
        ));
        for c in &text_chunks {
            frames.push((
                Some("response.output_text.delta"),
                json!({"type": "response.output_text.delta", "item_id": item_id, "output_index": index,
                    "content_index": 0, "delta": c}),
            ));
        }
        let item = json!({"type": "message", "id": item_id, "role": "assistant", "status": "completed",
            "content": [{"type": "output_text", "text": text_chunks.concat(), "annotations": []}]});
        frames.push((
            Some("response.output_item.done"),
            json!({"type": "response.output_item.done", "output_index": index, "item": item}),
        ));
        output.push(item);
        index += 1;
    }
    for (i, (name, args)) in calls.iter().enumerate() {
        let item = json!({"type": "function_call", "id": format!("fc_mock_{n}_{i}"), "call_id": format!("call_mock_{n}_{i}"),
            "name": name, "arguments": args.to_string(), "status": "completed"});
        frames.push((
            Some("response.output_item.added"),
            json!({"type": "response.output_item.added", "output_index": index, "item": item}),
        ));
        frames.push((
            Some("response.output_item.done"),
            json!({"type": "response.output_item.done", "output_index": index, "item": item}),
        ));
        output.push(item);
        index += 1;
    }
    frames.push((
        Some("response.completed"),
        json!({"type": "response.completed", "response": {"id": response_id, "object": "response", "status": "completed",
            "model": model, "output": output, "usage": {"input_tokens": 10, "output_tokens": 5, "total_tokens": 15,
            "input_tokens_details": {"cached_tokens": 0}, "output_tokens_details": {"reasoning_tokens": 0}}}}),
    ));
    sse(frames, false, None)
}
