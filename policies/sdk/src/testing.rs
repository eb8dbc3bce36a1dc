//! Events for unit tests: build what the host would send and call your policy's `evaluate` directly, natively,
//! with `cargo test`.
//!
//! ```rust
//! use omnigent_policy::testing::{event, verdict};
//! use omnigent_policy::*;
//!
//! let call = event(Phase::ToolCall).tool("shell").arguments(json!({"command": "ls"})).build();
//! assert_eq!(call.arg_str("command").as_deref(), Some("ls"));
//! assert_eq!(verdict(&deny("no")), "deny: no");
//! ```

use crate::{Context, Decision, Event, Map, Phase, Usage, Value, Verdict, init_params, json};

/// Starts an event of `phase` in an empty session (policy name `under_test`, no state, no spend).
pub fn event(phase: Phase) -> EventBuilder {
    EventBuilder {
        phase,
        target: None,
        data: json!({}),
        request_data: None,
        state: Map::new(),
        labels: Map::new(),
        usage: Usage { input_tokens: 0, output_tokens: 0, total_tokens: 0, total_cost_usd: 0.0 },
        model: "test-model".into(),
    }
}

/// Sets the parameters `evaluate` sees through [`crate::params`], as the host's `init` call would (this thread
/// only). Returns `init_params`'s answer.
pub fn with_params(params: Value) -> Result<(), String> {
    init_params(&params.to_string()).map(|_| ())
}

/// A decision's verdict in words: `allow`, `abstain`, `deny: <reason>`, `ask: <message>`.
pub fn verdict(decision: &Decision) -> String {
    match &decision.verdict {
        Verdict::Allow => "allow".into(),
        Verdict::Abstain => "abstain".into(),
        Verdict::Deny(reason) => format!("deny: {reason}"),
        Verdict::Ask(e) => format!("ask: {}", e.message),
    }
}

/// See [`event`].
pub struct EventBuilder {
    phase: Phase,
    target: Option<String>,
    data: Value,
    request_data: Option<Value>,
    state: Map<String, Value>,
    labels: Map<String, Value>,
    usage: Usage,
    model: String,
}

impl EventBuilder {
    /// The tool (on tool phases). On `tool-call` it also sets the payload's `name`.
    pub fn tool(mut self, name: &str) -> Self {
        self.target = Some(name.into());
        if self.phase == Phase::ToolCall {
            self.data["name"] = json!(name);
        }
        self
    }

    /// The tool call's arguments (on `tool-call`; on `tool-result`, those of the call it answers).
    pub fn arguments(mut self, arguments: Value) -> Self {
        match self.phase {
            Phase::ToolResult => {
                self.request_data = Some(json!({"name": self.target.clone(), "arguments": arguments}));
            }
            _ => self.data["arguments"] = arguments,
        }
        self
    }

    /// The text of the phase: the user message (`request`), the tool output (`tool-result`), the answer
    /// (`response`).
    pub fn text(mut self, text: &str) -> Self {
        let key = match self.phase {
            Phase::Request => "user_content",
            Phase::ToolResult => "result",
            Phase::LlmResponse => "text_preview",
            _ => "text",
        };
        self.data[key] = json!(text);
        self
    }

    /// The whole payload, replacing what `tool`, `arguments` and `text` set.
    pub fn data(mut self, data: Value) -> Self {
        self.data = data;
        self
    }

    /// A key of the session's policy state.
    pub fn state(mut self, key: &str, value: Value) -> Self {
        self.state.insert(key.into(), value);
        self
    }

    /// A session label.
    pub fn label(mut self, key: &str, value: Value) -> Self {
        self.labels.insert(key.into(), value);
        self
    }

    /// The session's spend so far, in US dollars.
    pub fn cost(mut self, usd: f64) -> Self {
        self.usage.total_cost_usd = usd;
        self
    }

    /// The session's model.
    pub fn model(mut self, model: &str) -> Self {
        self.model = model.into();
        self
    }

    pub fn build(self) -> Event {
        Event {
            phase: self.phase,
            target: self.target,
            data: self.data.to_string(),
            request_data: self.request_data.map(|v| v.to_string()),
            context: Context {
                session_id: "conv_test".into(),
                model: self.model,
                harness: "agent".into(),
                usage: self.usage,
                labels: Value::Object(self.labels).to_string(),
                state: Value::Object(self.state).to_string(),
                policy_name: "under_test".into(),
            },
        }
    }
}
