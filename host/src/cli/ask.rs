//! A question to the human at the terminal (`response.elicitation_request`): a policy's yes/no, or an MCP server's
//! question that also asks for fields (its `requestedSchema`), each read from a line and checked against its type.

use std::io::Write;

use serde_json::{Map, Number, Value, json};
use tokio::io::{AsyncRead, BufReader, Lines};

/// A question shown and not answered yet.
#[derive(Clone, Debug)]
pub(super) struct Asked {
    pub elicitation_id: String,
    /// The session to answer in (a sub-agent's question is answered in its own).
    pub target: String,
    /// The fields asked for: (name, its schema, required).
    fields: Vec<(String, Value, bool)>,
}

impl Asked {
    /// Prints the question and its y/n prompt.
    pub fn show(data: &Value, session: &str) -> Asked {
        let p = &data["params"];
        let asker = match p["mcp_server"].as_str() {
            Some(server) => format!("MCP server {server}"),
            None => format!("policy {}", p["policy_name"].as_str().unwrap_or("?")),
        };
        eprintln!("? {} [{asker}]", p["message"].as_str().unwrap_or("approve?"));
        eprint!("  allow? [y/n] ");
        let _ = std::io::stderr().flush();
        let required: Vec<&str> = p
            .pointer("/requestedSchema/required")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .collect();
        let fields = p
            .pointer("/requestedSchema/properties")
            .and_then(Value::as_object)
            .into_iter()
            .flatten()
            .map(|(name, schema)| (name.clone(), schema.clone(), required.contains(&name.as_str())))
            .collect();
        Asked {
            elicitation_id: data["elicitation_id"].as_str().unwrap_or_default().to_string(),
            target: p["target_session_id"].as_str().unwrap_or(session).to_string(),
            fields,
        }
    }

    /// The answer's body after a yes or no: a yes reads the fields asked for first. None when input ends.
    pub async fn answer<R: AsyncRead + Unpin>(&self, accept: bool, lines: &mut Lines<BufReader<R>>) -> Option<Value> {
        if !accept {
            return Some(json!({"action": "decline"}));
        }
        let mut content = Map::new();
        for (name, schema, required) in &self.fields {
            if let Some(value) = read_field(name, schema, *required, lines).await? {
                content.insert(name.clone(), value);
            }
        }
        Some(match content.is_empty() {
            true => json!({"action": "accept"}),
            false => json!({"action": "accept", "content": content}),
        })
    }
}

/// Reads one field until its line fits; None (inside) for an optional field left empty; None when input ends.
async fn read_field<R: AsyncRead + Unpin>(
    name: &str,
    schema: &Value,
    required: bool,
    lines: &mut Lines<BufReader<R>>,
) -> Option<Option<Value>> {
    let title = schema["title"].as_str().unwrap_or(name);
    let choices: Vec<Value> = match schema["enum"].as_array() {
        Some(values) => values.clone(),
        None => schema["oneOf"].as_array().into_iter().flatten().filter_map(|o| o.get("const").cloned()).collect(),
    };
    let kind = schema["type"].as_str().unwrap_or("string");
    let mut hint = String::new();
    if let Some(description) = schema["description"].as_str() {
        hint.push_str(&format!(" — {description}"));
    }
    if !choices.is_empty() {
        let names: Vec<String> =
            choices.iter().map(|c| c.as_str().map(str::to_string).unwrap_or(c.to_string())).collect();
        hint.push_str(&format!(" [{}]", names.join(", ")));
    } else if kind == "boolean" {
        hint.push_str(" [y/n]");
    }
    if !required {
        hint.push_str(" (optional: Enter skips)");
    }
    loop {
        eprint!("  {title}{hint}: ");
        let _ = std::io::stderr().flush();
        let line = lines.next_line().await.ok()??;
        let line = line.trim();
        if line.is_empty() && !required {
            return Some(None);
        }
        match parse(line, kind, &choices) {
            Some(value) => return Some(Some(value)),
            None => eprintln!("  that is not a {}", if choices.is_empty() { kind } else { "listed choice" }),
        }
    }
}

/// Reads y/n from the terminal (asking again on anything else); None when stdin is closed.
pub(super) async fn read_yes_no<R: AsyncRead + Unpin>(lines: &mut Lines<BufReader<R>>) -> Option<bool> {
    loop {
        let line = lines.next_line().await.ok()??;
        match yes_no(&line) {
            Some(answer) => return Some(answer),
            None => {
                eprint!("  please answer y or n: ");
                let _ = std::io::stderr().flush();
            }
        }
    }
}

/// `y`/`yes` → accept, `n`/`no` → decline, anything else → not an answer.
pub(super) fn yes_no(line: &str) -> Option<bool> {
    match line.trim().to_ascii_lowercase().as_str() {
        "y" | "yes" => Some(true),
        "n" | "no" => Some(false),
        _ => None,
    }
}

/// A typed value from a line, if it is one of the field's.
fn parse(line: &str, kind: &str, choices: &[Value]) -> Option<Value> {
    if !choices.is_empty() {
        return choices.iter().find(|c| c.as_str().map(str::to_string).unwrap_or(c.to_string()) == line).cloned();
    }
    match kind {
        "boolean" => yes_no(line).map(Value::Bool),
        "integer" => line.parse::<i64>().ok().map(Value::from),
        "number" => line.parse::<f64>().ok().and_then(Number::from_f64).map(Value::Number),
        _ if line.is_empty() => None,
        _ => Some(Value::String(line.to_string())),
    }
}

#[cfg(test)]
mod tests {
    use tokio::io::AsyncBufReadExt;

    use super::*;

    async fn answered(data: Value, accept: bool, typed: &str) -> Option<Value> {
        let asked = Asked::show(&data, "conv_1");
        let mut lines = BufReader::new(typed.as_bytes()).lines();
        asked.answer(accept, &mut lines).await
    }

    fn mcp_question() -> Value {
        json!({"elicitation_id": "elicit_1", "params": {"mcp_server": "fx", "message": "Deploy where?",
            "requestedSchema": {"type": "object", "properties": {
                "env": {"type": "string", "enum": ["staging", "prod"]},
                "replicas": {"type": "integer"},
                "note": {"type": "string"},
                "sure": {"type": "boolean"}},
            "required": ["env", "replicas", "sure"]}}})
    }

    #[tokio::test]
    async fn a_yes_reads_each_field_until_it_fits() {
        // "dev" is not a choice and "three" not an integer: asked again; the optional note is skipped.
        let body = answered(mcp_question(), true, "dev\nprod\nthree\n3\n\ny\n").await.unwrap();
        assert_eq!(body, json!({"action": "accept", "content": {"env": "prod", "replicas": 3, "sure": true}}));
    }

    #[tokio::test]
    async fn a_no_reads_nothing_more_and_a_closed_input_is_no_answer() {
        assert_eq!(answered(mcp_question(), false, "").await, Some(json!({"action": "decline"})));
        assert_eq!(answered(mcp_question(), true, "prod\n").await, None);
        let policy = json!({"elicitation_id": "e", "params": {"policy_name": "ask", "message": "ok?"}});
        assert_eq!(answered(policy, true, "").await, Some(json!({"action": "accept"})));
    }
}
