//! Model providers: OpenAI-compatible Chat Completions, OpenAI Responses, Anthropic Messages (all streaming, via
//! reqwest) and the `scripted` demo/test provider. Rate limits and transient errors are retried with backoff.

mod anthropic;
mod openai;
mod openai_responses;
mod scripted;

use std::time::Duration;

use omnigent_runtime::harness::{Message, ToolCall, ToolSpec, Usage, llm::Completion};

use crate::config::{ProviderKind, SessionConfig};
use crate::credentials::{self, Credentials};

/// A request in provider-neutral form.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct ChatRequest {
    pub model: String,
    pub system: Option<String>,
    pub messages: Vec<Message>,
    pub tools: Vec<ToolSpec>,
    pub max_tokens: Option<u32>,
    /// The session's reasoning effort (`PATCH reasoning_effort`), sent on the OpenAI wire; None: the model's default.
    pub reasoning_effort: Option<String>,
}

/// What a provider streams while a call runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Streamed<'a> {
    /// Answer text.
    Text(&'a str),
    /// A summary of the model's reasoning (OpenAI Responses' `reasoning_summary_text`).
    ReasoningSummary(&'a str),
}

/// Why a call failed.
#[derive(Clone, Debug, thiserror::Error, serde::Serialize, serde::Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum LlmError {
    /// 429: retried after `retry_after` (or backoff).
    #[error("rate limited by the provider ({message})")]
    RateLimited { retry_after: Option<Duration>, message: String },
    /// 5xx, connection errors, a stream cut short: retried with backoff.
    #[error("{message}")]
    Transient { message: String },
    /// Anything retrying cannot fix (bad key, bad request, unknown model).
    #[error("{message}")]
    Fatal { code: String, message: String },
}

impl LlmError {
    pub fn code(&self) -> &str {
        match self {
            LlmError::RateLimited { .. } => "rate_limited",
            LlmError::Transient { .. } => "llm_unavailable",
            LlmError::Fatal { code, .. } => code,
        }
    }

    /// Whether `code` is one of the codes a model provider's failure carries.
    pub fn is_llm_code(code: &str) -> bool {
        LLM_CODES.contains(&code)
    }

    fn retryable(&self) -> bool {
        !matches!(self, LlmError::Fatal { .. })
    }
}

/// Every code an [`LlmError`] carries (`Fatal` codes included): a turn that fails with one failed at its model.
const LLM_CODES: [&str; 6] =
    ["rate_limited", "llm_unavailable", "llm_error", "llm_auth_failed", "missing_api_key", "script_exhausted"];

/// Where a vendor's API is reached, and with which key.
pub struct Endpoint {
    http: reqwest::Client,
    base_url: String,
    api_key: String,
}

impl Endpoint {
    /// A POST to `path` under the base URL.
    fn post(&self, path: &str) -> reqwest::RequestBuilder {
        self.http.post(format!("{}/{path}", self.base_url.trim_end_matches('/')))
    }
}

/// A configured provider.
pub enum Provider {
    OpenAi(openai::OpenAi),
    OpenAiResponses(openai_responses::OpenAiResponses),
    Anthropic(anthropic::Anthropic),
    Scripted(scripted::Scripted),
}

/// How many times a call is attempted in all.
pub const MAX_ATTEMPTS: u32 = 4;

impl Provider {
    /// Builds the provider a session config names, with the key [`Credentials`] resolves for it now (so a key
    /// set or removed since the last turn applies to this one).
    pub fn from_config(
        config: &SessionConfig,
        http: reqwest::Client,
        credentials: &Credentials,
    ) -> Result<Provider, LlmError> {
        // The key, and the base URL (the vendor's own unless something names another).
        let endpoint = |vendor: credentials::Vendor| {
            let found = credentials
                .resolve(config.executor.auth.as_ref(), vendor)
                .map_err(|missing| LlmError::Fatal { code: "missing_api_key".into(), message: missing.message })?;
            let base_url = found.base_url.unwrap_or_else(|| vendor.default_url.into());
            Ok::<_, LlmError>(Endpoint { http: http.clone(), base_url, api_key: found.api_key })
        };
        Ok(match config.provider() {
            ProviderKind::Scripted => Provider::Scripted(scripted::Scripted { script: config.executor.script.clone() }),
            ProviderKind::Openai => Provider::OpenAi(openai::OpenAi(endpoint(credentials::OPENAI)?)),
            ProviderKind::OpenaiResponses => {
                Provider::OpenAiResponses(openai_responses::OpenAiResponses(endpoint(credentials::OPENAI)?))
            }
            ProviderKind::Anthropic => Provider::Anthropic(anthropic::Anthropic(endpoint(credentials::ANTHROPIC)?)),
        })
    }

    /// One attempt: streams text (and reasoning summary) deltas to `on_delta` as they arrive.
    async fn attempt(
        &self,
        req: &ChatRequest,
        on_delta: &mut (dyn FnMut(Streamed<'_>) + Send),
    ) -> Result<Completion, LlmError> {
        match self {
            Provider::OpenAi(p) => p.complete(req, on_delta).await,
            Provider::OpenAiResponses(p) => p.complete(req, on_delta).await,
            Provider::Anthropic(p) => p.complete(req, on_delta).await,
            Provider::Scripted(p) => p.complete(req, on_delta).await,
        }
    }

    /// Completes with bounded retries. `on_retry(attempt, delay, error)` is told before each wait. A retry after
    /// text was already streamed starts the text over; `on_delta` sees it again (the caller resets on retry).
    pub async fn complete(
        &self,
        req: &ChatRequest,
        on_delta: &mut (dyn FnMut(Streamed<'_>) + Send),
        on_retry: &mut (dyn FnMut(u32, Duration, &LlmError) + Send),
    ) -> Result<Completion, LlmError> {
        let mut attempt = 1;
        loop {
            match self.attempt(req, on_delta).await {
                Ok(c) => return Ok(c),
                Err(e) if e.retryable() && attempt < MAX_ATTEMPTS => {
                    let backoff = Duration::from_millis(500 * 2u64.pow(attempt - 1));
                    let delay = match &e {
                        LlmError::RateLimited { retry_after: Some(d), .. } => (*d).min(Duration::from_secs(30)),
                        _ => backoff,
                    };
                    on_retry(attempt, delay, &e);
                    tokio::time::sleep(delay).await;
                    attempt += 1;
                }
                Err(e) => return Err(e),
            }
        }
    }
}

/// Sends a provider's streaming request and opens its event stream: a transport failure or a non-success answer
/// becomes the matching [`LlmError`] (`who` names the provider in its message).
async fn open_stream(request: reqwest::RequestBuilder, who: &str) -> Result<crate::sse_reader::SseReader, LlmError> {
    let response = request.send().await.map_err(|e| transport_error(e, who))?;
    if !response.status().is_success() {
        return Err(http_error(response, who).await);
    }
    Ok(crate::sse_reader::SseReader::new(response))
}

/// Maps a non-success HTTP answer to an error.
async fn http_error(response: reqwest::Response, provider: &str) -> LlmError {
    let status = response.status();
    let retry_after = response
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<f64>().ok())
        .map(Duration::from_secs_f64);
    let body = response.text().await.unwrap_or_default();
    let detail = serde_json::from_str::<serde_json::Value>(&body)
        .ok()
        .and_then(|v| v.pointer("/error/message").and_then(|m| m.as_str()).map(str::to_string))
        .unwrap_or_else(|| body.chars().take(300).collect());
    let message = format!("{provider} answered HTTP {}: {detail}", status.as_u16());
    match status.as_u16() {
        429 => LlmError::RateLimited { retry_after, message },
        500..=599 => LlmError::Transient { message },
        401 | 403 => LlmError::Fatal { code: "llm_auth_failed".into(), message },
        _ => LlmError::Fatal { code: "llm_error".into(), message },
    }
}

fn transport_error(e: reqwest::Error, provider: &str) -> LlmError {
    LlmError::Transient { message: format!("cannot reach {provider}: {e}") }
}

fn empty_usage() -> Usage {
    Usage { input_tokens: 0, output_tokens: 0 }
}

/// Tool calls whose arguments are not a JSON object get `{}` so the harness and tools see valid JSON.
fn normalize_calls(calls: Vec<ToolCall>) -> Vec<ToolCall> {
    calls
        .into_iter()
        .map(|mut c| {
            if c.arguments.trim().is_empty() {
                c.arguments = "{}".into();
            }
            c
        })
        .collect()
}
