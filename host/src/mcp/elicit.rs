//! An MCP server's questions to the user (MCP's `elicitation/create`, sent while one of its tool calls runs): the
//! client side of the protocol. The connection's handler hands each question to the tool call in progress, which
//! asks a human through the session; the answer goes back checked against the schema the server asked with, as
//! Omnigent does: an accept whose fields do not fit is declined (nobody chose those values), an accept without
//! fields is filled in where the schema leaves one sensible value (a boolean, an enum, a default), and otherwise
//! declined.

use std::sync::{Arc, Mutex};

use rmcp::ErrorData as McpError;
use rmcp::model::{
    ClientCapabilities, ClientConfig, ElicitRequestParams, ElicitResult, ElicitationAction, ElicitationCapability,
    FormElicitationCapability, Implementation,
};
use rmcp::service::{RequestContext, RoleClient};
use serde_json::{Map, Value};
use tokio::sync::{mpsc, oneshot};

use crate::session::{Answer, ApprovalAction};

/// A server's question, as the human is asked it.
#[derive(Clone, Debug)]
pub struct Question {
    pub message: String,
    /// The fields asked for (a flat object schema of primitives; no properties: a plain yes or no).
    pub requested_schema: Value,
}

/// A question on its way to the tool call in progress, with where its answer goes.
pub struct Asked {
    pub question: Question,
    pub reply: oneshot::Sender<Answer>,
}

/// Where a connection's questions go: the tool call of the session that is running one (none between calls). A
/// session's turn calls its tools one after another; should two calls overlap, the newer one takes the questions
/// (both belong to the same turn, whose human answers them).
#[derive(Clone, Default)]
pub struct Route(Arc<Mutex<Option<OpenRoute>>>);

/// The call questions go to now: its route's number, and its channel.
type OpenRoute = (u64, mpsc::UnboundedSender<Asked>);

/// Tells the routes of overlapping calls apart.
static NEXT_ROUTE: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

impl Route {
    /// Routes the connection's questions to `to` until the returned guard is dropped.
    pub fn open(&self, to: mpsc::UnboundedSender<Asked>) -> Open<'_> {
        let id = NEXT_ROUTE.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        *self.0.lock().unwrap() = Some((id, to));
        Open(self, id)
    }

    fn current(&self) -> Option<mpsc::UnboundedSender<Asked>> {
        self.0.lock().unwrap().as_ref().map(|(_, to)| to.clone())
    }
}

/// Questions reach a tool call while this lives.
pub struct Open<'a>(&'a Route, u64);

impl Drop for Open<'_> {
    fn drop(&mut self) {
        let mut route = self.0.0.lock().unwrap();
        if route.as_ref().is_some_and(|(id, _)| *id == self.1) {
            route.take();
        }
    }
}

/// The client's side of a connection: it declares that it can ask the user (form mode) and passes questions on.
pub struct Handler {
    pub route: Route,
}

impl rmcp::ClientHandler for Handler {
    fn get_info(&self) -> ClientConfig {
        let mut capabilities = ClientCapabilities::default();
        capabilities.elicitation = Some(ElicitationCapability::new().with_form(FormElicitationCapability::new()));
        ClientConfig::new(capabilities, Implementation::new("omnigent", env!("CARGO_PKG_VERSION")))
    }

    async fn create_elicitation(
        &self,
        request: ElicitRequestParams,
        _context: RequestContext<RoleClient>,
    ) -> Result<ElicitResult, McpError> {
        let ElicitRequestParams::FormElicitationParams { message, requested_schema, .. } = request else {
            // Declared form mode only: a URL question is not this client's to open.
            return Ok(ElicitResult::new(ElicitationAction::Decline));
        };
        let requested_schema = serde_json::to_value(&requested_schema).unwrap_or_default();
        let Some(to) = self.route.current() else {
            tracing::warn!("an MCP server asked a question outside a tool call; declined");
            return Ok(ElicitResult::new(ElicitationAction::Decline));
        };
        let (reply, answer) = oneshot::channel();
        let question = Question { message, requested_schema };
        if to.send(Asked { question: question.clone(), reply }).is_err() {
            return Ok(ElicitResult::new(ElicitationAction::Cancel));
        }
        let answer = answer.await.unwrap_or_else(|_| Answer::cancelled());
        Ok(reply_for(&question.requested_schema, answer))
    }
}

/// What goes back to the server for a human's answer.
fn reply_for(schema: &Value, answer: Answer) -> ElicitResult {
    match answer.action {
        ApprovalAction::Accept => {}
        ApprovalAction::Decline => return ElicitResult::new(ElicitationAction::Decline),
        ApprovalAction::Cancel => return ElicitResult::new(ElicitationAction::Cancel),
    }
    let given = answer.content.filter(|c| c.as_object().is_some_and(|o| !o.is_empty()));
    let content = match given {
        Some(given) => match fits(&given, schema) {
            true => Some(given),
            false => {
                tracing::info!("an answer to an MCP server's question does not fit its schema; declined");
                return ElicitResult::new(ElicitationAction::Decline);
            }
        },
        None => filled_in(schema).map(Value::Object),
    };
    match content {
        Some(content) => ElicitResult::new(ElicitationAction::Accept).with_content(content),
        None if requires_fields(schema) => ElicitResult::new(ElicitationAction::Decline),
        None => ElicitResult::new(ElicitationAction::Accept),
    }
}

fn properties(schema: &Value) -> Option<&Map<String, Value>> {
    schema.get("properties").and_then(Value::as_object)
}

fn requires_fields(schema: &Value) -> bool {
    properties(schema).is_some_and(|p| !p.is_empty())
        && schema.get("required").and_then(Value::as_array).is_some_and(|r| !r.is_empty())
}

/// Whether an answer's fields are those the schema asked for, each a value it allows, the required ones present.
fn fits(content: &Value, schema: &Value) -> bool {
    let (Some(content), Some(properties)) = (content.as_object(), properties(schema)) else { return false };
    let each_fits = content.iter().all(|(key, value)| properties.get(key).is_some_and(|p| value_fits(value, p)));
    let required = schema.get("required").and_then(Value::as_array).into_iter().flatten();
    each_fits && required.filter_map(Value::as_str).all(|name| content.contains_key(name))
}

fn value_fits(value: &Value, prop: &Value) -> bool {
    let primitive = match value {
        Value::Array(items) => items.iter().all(Value::is_string),
        Value::Object(_) => false,
        _ => true,
    };
    if !primitive {
        return false;
    }
    if let Some(kind) = prop.get("type").and_then(Value::as_str)
        && !of_type(value, kind, prop)
    {
        return false;
    }
    if let Some(branches) = prop.get("anyOf").and_then(Value::as_array)
        && !branches.is_empty()
        && !branches.iter().any(|b| value_fits(value, b))
    {
        return false;
    }
    if !within_bounds(value, prop) || prop.get("const").is_some_and(|c| c != value) {
        return false;
    }
    if let Some(allowed) = prop.get("enum").and_then(Value::as_array).filter(|a| !a.is_empty()) {
        let each_allowed = |v: &Value| allowed.contains(v);
        let fits = each_allowed(value)
            || (prop.get("type").and_then(Value::as_str) == Some("array")
                && value.as_array().is_some_and(|items| items.iter().all(each_allowed)));
        if !fits {
            return false;
        }
    }
    let consts: Vec<&Value> =
        prop.get("oneOf").and_then(Value::as_array).into_iter().flatten().filter_map(|o| o.get("const")).collect();
    consts.is_empty() || consts.contains(&value)
}

fn of_type(value: &Value, kind: &str, prop: &Value) -> bool {
    match kind {
        "string" => value.is_string(),
        "boolean" => value.is_boolean(),
        "integer" => value.is_i64() || value.is_u64(),
        "number" => value.is_number(),
        "null" => value.is_null(),
        "array" => {
            let Some(items) = value.as_array() else { return false };
            let item = prop.get("items");
            let item_enum = item.and_then(|i| i.get("enum")).and_then(Value::as_array).filter(|e| !e.is_empty());
            let item_type = item.and_then(|i| i.get("type")).and_then(Value::as_str);
            let count = |key: &str| prop.get(key).and_then(Value::as_u64).map(|n| n as usize);
            item_enum.is_none_or(|allowed| items.iter().all(|v| allowed.contains(v)))
                && item_type.is_none_or(|t| items.iter().all(|v| of_type(v, t, &Value::Null)))
                && count("minItems").is_none_or(|n| items.len() >= n)
                && count("maxItems").is_none_or(|n| items.len() <= n)
        }
        _ => true,
    }
}

fn within_bounds(value: &Value, prop: &Value) -> bool {
    let bound = |key: &str| prop.get(key).and_then(Value::as_f64);
    let length = |key: &str| prop.get(key).and_then(Value::as_u64).map(|n| n as usize);
    match value {
        Value::Number(n) => {
            let n = n.as_f64().unwrap_or_default();
            bound("minimum").is_none_or(|m| n >= m) && bound("maximum").is_none_or(|m| n <= m)
        }
        Value::String(s) => {
            let chars = s.chars().count();
            length("minLength").is_none_or(|m| chars >= m) && length("maxLength").is_none_or(|m| chars <= m)
        }
        _ => true,
    }
}

/// The answer an accept means when the human filled in nothing: for each field a boolean is true, an enum or
/// `oneOf` is "allow" if offered (else its first value), a default is the default; None if any field needs typing.
fn filled_in(schema: &Value) -> Option<Map<String, Value>> {
    let properties = properties(schema).filter(|p| !p.is_empty())?;
    let mut content = Map::new();
    for (key, prop) in properties {
        let allow = Value::String("allow".into());
        let consts: Vec<&Value> =
            prop.get("oneOf").and_then(Value::as_array).into_iter().flatten().filter_map(|o| o.get("const")).collect();
        let choices: Vec<&Value> = match prop.get("enum").and_then(Value::as_array) {
            _ if !consts.is_empty() => consts,
            Some(values) => values.iter().collect(),
            None => Vec::new(),
        };
        let value = if !choices.is_empty() {
            if choices.contains(&&allow) { allow } else { choices[0].clone() }
        } else if prop.get("type").and_then(Value::as_str) == Some("boolean") {
            Value::Bool(true)
        } else {
            prop.get("default")?.clone()
        };
        content.insert(key.clone(), value);
    }
    Some(content)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn answer(action: ApprovalAction, content: Option<Value>) -> Answer {
        Answer { action, content }
    }

    fn schema() -> Value {
        json!({"type": "object", "properties": {
            "env": {"type": "string", "enum": ["staging", "prod"]},
            "replicas": {"type": "integer", "minimum": 1, "maximum": 5},
            "confirm": {"type": "boolean"},
        }, "required": ["env"]})
    }

    #[test]
    fn an_answer_that_fits_goes_back_as_given() {
        let content = json!({"env": "prod", "replicas": 3, "confirm": true});
        let r = reply_for(&schema(), answer(ApprovalAction::Accept, Some(content.clone())));
        assert_eq!((r.action, r.content), (ElicitationAction::Accept, Some(content)));
    }

    #[test]
    fn an_answer_that_does_not_fit_is_declined() {
        for content in [
            json!({"env": "dev"}),                       // not in the enum
            json!({"env": "prod", "replicas": 9}),       // above the maximum
            json!({"env": "prod", "replicas": "3"}),     // wrong type
            json!({"replicas": 3}),                      // the required field missing
            json!({"env": "prod", "other": 1}),          // a field nobody asked for
            json!({"env": "prod", "confirm": {"x": 1}}), // not a primitive
        ] {
            let r = reply_for(&schema(), answer(ApprovalAction::Accept, Some(content.clone())));
            assert_eq!(r.action, ElicitationAction::Decline, "{content}");
            assert_eq!(r.content, None);
        }
    }

    #[test]
    fn an_accept_without_fields_is_filled_in_where_one_value_makes_sense() {
        let consent = json!({"type": "object", "properties": {
            "ok": {"type": "boolean"},
            "mode": {"type": "string", "enum": ["deny", "allow"]},
            "scope": {"type": "string", "oneOf": [{"const": "once"}, {"const": "always"}]},
            "note": {"type": "string", "default": "none"},
        }});
        let r = reply_for(&consent, answer(ApprovalAction::Accept, None));
        assert_eq!(r.content, Some(json!({"ok": true, "mode": "allow", "scope": "once", "note": "none"})));
        // A field that needs typing: declined when required, a bare accept otherwise.
        let r = reply_for(&schema(), answer(ApprovalAction::Accept, None));
        assert_eq!(r.action, ElicitationAction::Decline);
        let optional = json!({"type": "object", "properties": {"why": {"type": "string"}}});
        let r = reply_for(&optional, answer(ApprovalAction::Accept, Some(json!({}))));
        assert_eq!((r.action, r.content), (ElicitationAction::Accept, None));
        let plain = json!({"type": "object", "properties": {}});
        assert_eq!(reply_for(&plain, answer(ApprovalAction::Accept, None)).action, ElicitationAction::Accept);
    }

    #[test]
    fn decline_and_cancel_carry_no_content() {
        let r = reply_for(&schema(), answer(ApprovalAction::Decline, Some(json!({"env": "prod"}))));
        assert_eq!((r.action, r.content), (ElicitationAction::Decline, None));
        assert_eq!(reply_for(&schema(), Answer::cancelled()).action, ElicitationAction::Cancel);
    }
}
