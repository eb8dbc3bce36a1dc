//! Claude's own transcript (`<config>/projects/<cwd slug>/<session>.jsonl`) as what the session records: the
//! file is the source of truth for what the CLI did; hooks are only early signals. It is tailed by byte offset
//! (only whole lines are taken, so a line being written is read once it is complete), and each batch is put in
//! conversation order by `parentUuid`: Claude's first flush is not in file order.

use std::io::{Read, Seek, SeekFrom};
use std::path::PathBuf;

use serde_json::{Value, json};

/// Most bytes read from the transcript per poll (a long backlog is read over several polls).
const MAX_READ: u64 = 8 << 20;

/// What one transcript record means for the session.
#[derive(Clone, Debug, PartialEq)]
pub enum Seen {
    /// A transcript item: an assistant message, a tool call, a tool result.
    Item { id: String, item_type: &'static str, fields: Value },
    /// Tokens of one model response (Claude repeats a response's usage on each of its lines: keyed by message id).
    Usage { message_id: String, input_tokens: u64, output_tokens: u64, model: String },
    /// A prompt Claude took (typed, pasted or ours).
    Prompt(String),
    /// A message Claude queued while busy (it reaches the model within the running turn).
    Queued(String),
    /// The turn finished.
    TurnEnd,
    /// The human (or omnigent) interrupted the turn.
    Interrupted,
    /// A UserPromptSubmit hook blocked the prompt; the text is Claude's notice.
    Blocked(String),
    /// The model call failed (Claude shows an API error as an assistant message).
    ApiError(String),
}

/// Reads new whole lines of a transcript from a byte offset.
pub struct Tail {
    pub path: PathBuf,
    /// Where the next unread line starts.
    pub offset: u64,
}

impl Tail {
    /// The whole lines after `offset`, each with the offset just past it. A missing file is no lines yet.
    pub fn read(&mut self) -> std::io::Result<Vec<(u64, Value)>> {
        let mut file = match std::fs::File::open(&self.path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(e),
        };
        let len = file.metadata()?.len();
        if len < self.offset {
            // Rewritten from scratch (never seen Claude do it): start over rather than read garbage.
            tracing::warn!(path = %self.path.display(), "the transcript shrank; reading it from the start");
            self.offset = 0;
        }
        if len == self.offset {
            return Ok(Vec::new());
        }
        file.seek(SeekFrom::Start(self.offset))?;
        let mut bytes = Vec::new();
        file.take(MAX_READ.min(len - self.offset)).read_to_end(&mut bytes)?;
        let mut out = Vec::new();
        let mut start = 0;
        while let Some(end) = bytes[start..].iter().position(|&b| b == b'\n') {
            let line = &bytes[start..start + end];
            start += end + 1;
            let offset = self.offset + start as u64;
            match serde_json::from_slice::<Value>(line) {
                Ok(v) => out.push((offset, v)),
                Err(e) if !line.iter().all(u8::is_ascii_whitespace) => {
                    tracing::warn!(path = %self.path.display(), offset, error = %e, "skipping a transcript line that is not JSON");
                    out.push((offset, Value::Null));
                }
                Err(_) => out.push((offset, Value::Null)),
            }
        }
        if let Some((last, _)) = out.last() {
            self.offset = *last;
        }
        Ok(out)
    }
}

/// Puts a batch in conversation order: a record comes after its parent when the parent is in the same batch;
/// otherwise file order holds. Offsets travel with their records; the batch's cursor is its largest offset.
pub fn in_conversation_order(batch: Vec<(u64, Value)>) -> Vec<(u64, Value)> {
    let uuid = |v: &Value| v["uuid"].as_str().map(str::to_string);
    let mut pending: Vec<(u64, Value)> = batch;
    let mut out = Vec::with_capacity(pending.len());
    while !pending.is_empty() {
        let waiting: std::collections::HashSet<String> = pending.iter().filter_map(|(_, v)| uuid(v)).collect();
        let ready = pending.iter().position(|(_, v)| v["parentUuid"].as_str().is_none_or(|p| !waiting.contains(p)));
        // A cycle (never expected) falls back to file order.
        let index = ready.unwrap_or(0);
        out.push(pending.remove(index));
    }
    out
}

/// An item id derived from the record, so reading a line twice can never make two items.
fn item_id(prefix: &str, record: &Value, block: usize) -> String {
    let uuid: String = record["uuid"].as_str().unwrap_or_default().chars().filter(|c| *c != '-').collect();
    format!("{prefix}_{uuid}_{block}")
}

/// Text of a tool result's `content`: a string, or text blocks.
fn result_text(content: &Value) -> String {
    match content {
        Value::String(s) => s.clone(),
        Value::Array(blocks) => blocks.iter().filter_map(|b| b["text"].as_str()).collect::<Vec<_>>().join("\n"),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

/// What a record means; most records (metadata, attachments, snapshots) mean nothing to the session.
pub fn map(record: &Value) -> Vec<Seen> {
    let mut out = Vec::new();
    match record["type"].as_str().unwrap_or_default() {
        "assistant" => {
            let message = &record["message"];
            let model = message["model"].as_str().unwrap_or_default().to_string();
            if record["isApiErrorMessage"] == true {
                let text = message["content"].as_array().into_iter().flatten().filter_map(|b| b["text"].as_str());
                out.push(Seen::ApiError(text.collect::<Vec<_>>().join("\n")));
                return out;
            }
            for (i, block) in message["content"].as_array().into_iter().flatten().enumerate() {
                match block["type"].as_str().unwrap_or_default() {
                    "text" if !block["text"].as_str().unwrap_or_default().is_empty() => {
                        let content = json!([{"type": "output_text", "text": block["text"], "annotations": []}]);
                        out.push(Seen::Item {
                            id: item_id("msg", record, i),
                            item_type: "message",
                            fields: json!({"role": "assistant", "content": content, "model": model}),
                        });
                    }
                    "tool_use" => out.push(Seen::Item {
                        id: item_id("fc", record, i),
                        item_type: "function_call",
                        fields: json!({"name": block["name"], "arguments": block["input"].to_string(),
                            "call_id": block["id"], "model": model}),
                    }),
                    "thinking" if !block["thinking"].as_str().unwrap_or_default().is_empty() => out.push(Seen::Item {
                        id: item_id("rs", record, i),
                        item_type: "reasoning",
                        fields: json!({"summary": [{"type": "summary_text", "text": block["thinking"]}]}),
                    }),
                    _ => {}
                }
            }
            let usage = &message["usage"];
            if let Some(id) = message["id"].as_str().filter(|_| usage.is_object()) {
                let count = |k: &str| usage[k].as_u64().unwrap_or(0);
                out.push(Seen::Usage {
                    message_id: id.to_string(),
                    input_tokens: count("input_tokens")
                        + count("cache_read_input_tokens")
                        + count("cache_creation_input_tokens"),
                    output_tokens: count("output_tokens"),
                    model,
                });
            }
        }
        "user" => match &record["message"]["content"] {
            Value::String(prompt) => out.push(Seen::Prompt(prompt.clone())),
            Value::Array(blocks) => {
                for (i, block) in blocks.iter().enumerate() {
                    match block["type"].as_str().unwrap_or_default() {
                        "tool_result" => out.push(Seen::Item {
                            id: item_id("fco", record, i),
                            item_type: "function_call_output",
                            fields: json!({"call_id": block["tool_use_id"], "output": result_text(&block["content"]),
                                "is_error": block["is_error"] == true}),
                        }),
                        "text" => {
                            let text = block["text"].as_str().unwrap_or_default();
                            if text.starts_with("[Request interrupted by user") {
                                out.push(Seen::Interrupted);
                            } else if !text.is_empty() {
                                out.push(Seen::Prompt(text.to_string()));
                            }
                        }
                        _ => {}
                    }
                }
            }
            _ => {}
        },
        "queue-operation" if record["operation"] == "enqueue" => {
            out.push(Seen::Queued(record["content"].as_str().unwrap_or_default().to_string()));
        }
        "system" => match record["subtype"].as_str().unwrap_or_default() {
            "turn_duration" => out.push(Seen::TurnEnd),
            "informational" => {
                let text = record["content"].as_str().unwrap_or_default();
                if text.starts_with("UserPromptSubmit operation blocked") {
                    out.push(Seen::Blocked(text.to_string()));
                }
            }
            _ => {}
        },
        _ => {}
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/src/native/claude/fixtures");

    fn records(name: &str) -> Vec<Seen> {
        let mut tail = Tail { path: format!("{FIXTURES}/{name}").into(), offset: 0 };
        let batch = tail.read().unwrap();
        assert_eq!(tail.offset, std::fs::metadata(&tail.path).unwrap().len(), "read to the end");
        in_conversation_order(batch).iter().flat_map(|(_, v)| map(v)).collect()
    }

    fn kinds(seen: &[Seen]) -> Vec<String> {
        seen.iter()
            .filter(|s| !matches!(s, Seen::Usage { .. }))
            .map(|s| match s {
                Seen::Item { item_type, .. } => item_type.to_string(),
                Seen::Prompt(p) => format!("prompt:{}", p.chars().take(12).collect::<String>()),
                Seen::Queued(q) => format!("queued:{q}"),
                Seen::TurnEnd => "end".into(),
                Seen::Interrupted => "interrupted".into(),
                Seen::Blocked(_) => "blocked".into(),
                Seen::ApiError(_) => "api_error".into(),
                Seen::Usage { .. } => unreachable!(),
            })
            .collect()
    }

    #[test]
    fn the_first_batch_is_put_in_conversation_order() {
        let seen = records("claude-transcript-hooks-deny-allow-permission.jsonl");
        let k = kinds(&seen);
        // In the file the denied call's result comes first; in order it follows the prompt and the call.
        assert_eq!(
            &k[..5],
            ["prompt:please run t", "function_call", "function_call_output", "message", "end"],
            "{k:?}"
        );
        let output = seen.iter().find_map(|s| match s {
            Seen::Item { item_type: "function_call_output", fields, .. } => Some(fields),
            _ => None,
        });
        let fields = output.expect("a tool result");
        assert_eq!(fields["output"], "denied by omnigent policy test");
        assert_eq!(fields["is_error"], true);
        assert_eq!(k.iter().filter(|k| *k == "interrupted").count(), 2, "{k:?}");
        assert_eq!(k.iter().filter(|k| *k == "end").count(), 6, "{k:?}");
    }

    #[test]
    fn queued_messages_interrupts_and_blocked_prompts_are_recognised() {
        let k = kinds(&records("claude-transcript-queued-interrupt-blocked.jsonl"));
        assert!(k.contains(&"queued:queued while busy".to_string()), "{k:?}");
        assert!(k.contains(&"interrupted".to_string()), "{k:?}");
        assert_eq!(k.last().unwrap(), "blocked", "{k:?}");
    }

    #[test]
    fn item_ids_come_from_the_record() {
        let a = records("claude-transcript-hooks-deny-allow-permission.jsonl");
        let b = records("claude-transcript-hooks-deny-allow-permission.jsonl");
        assert_eq!(a, b, "reading twice maps to the same ids");
    }

    #[test]
    fn a_partly_written_line_waits() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.jsonl");
        std::fs::write(&path, "{\"type\":\"system\",\"subtype\":\"turn_duration\"}\n{\"type\":\"us").unwrap();
        let mut tail = Tail { path: path.clone(), offset: 0 };
        assert_eq!(tail.read().unwrap().len(), 1);
        assert!(tail.read().unwrap().is_empty());
        use std::io::Write;
        std::fs::OpenOptions::new().append(true).open(&path).unwrap().write_all(b"er\"}\n").unwrap();
        let more = tail.read().unwrap();
        assert_eq!(more.len(), 1);
        assert_eq!(more[0].1["type"], "user");
    }
}
