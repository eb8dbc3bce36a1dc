//! How `omnigent run` and `attach` print a session's events: assistant text as it streams, tool calls and results
//! compactly, errors in plain words, approval requests as a y/n question.

use std::io::Write;

use reqwest::Method;
use serde_json::{Value, json};

use super::ask::Asked;
use super::client::Client;
use crate::protocol::EventType;
use crate::record::SessionStatus;

/// Prints a turn's events compactly; tells when the turn is over.
#[derive(Default)]
pub(super) struct Renderer {
    started: bool,
    mid_line: bool,
    /// A question shown and not answered yet.
    pub asking: Option<Asked>,
}

impl Renderer {
    pub fn newline(&mut self) {
        if self.mid_line {
            println!();
            self.mid_line = false;
        }
    }

    /// Some(true/false) when the turn ended well/badly.
    pub async fn show(
        &mut self,
        event_type: &str,
        data: &Value,
        client: &Client,
        session: &str,
    ) -> anyhow::Result<Option<bool>> {
        let mut out = std::io::stdout();
        let Some(event_type) = EventType::parse(event_type) else { return Ok(None) };
        match event_type {
            EventType::OutputTextDelta => {
                print!("{}", data["delta"].as_str().unwrap_or(""));
                let _ = out.flush();
                self.mid_line = true;
            }
            EventType::OutputItemDone => {
                let item = &data["item"];
                match item["type"].as_str().unwrap_or("") {
                    "function_call" if item["status"] == "action_required" => {
                        self.newline();
                        let name = item["name"].as_str().unwrap_or("?");
                        println!(
                            "→ {name}({}) — a client tool; this terminal cannot run it",
                            short(item["arguments"].as_str().unwrap_or(""), 200)
                        );
                        let body = json!({"type": "function_call_output", "data": {"call_id": item["call_id"],
                            "output": format!("error: the omnigent CLI cannot run the client tool '{name}'")}});
                        client.request(Method::POST, &format!("/v1/sessions/{session}/events"), Some(&body)).await?;
                    }
                    "function_call" if item["status"] == "completed" => {
                        self.newline();
                        println!(
                            "→ {}({})",
                            item["name"].as_str().unwrap_or("?"),
                            short(item["arguments"].as_str().unwrap_or(""), 200)
                        );
                    }
                    "function_call_output" => {
                        self.newline();
                        let output = item["output"].as_str().unwrap_or("");
                        let lines: Vec<&str> = output.lines().collect();
                        let shown: Vec<&str> = lines.iter().take(6).copied().collect();
                        println!("← {}", shown.join("\n  "));
                        if lines.len() > 6 {
                            println!("  … ({} more lines)", lines.len() - 6);
                        }
                    }
                    _ => {}
                }
            }
            EventType::Retry => {
                self.newline();
                eprintln!(
                    "(retrying: {}; attempt {}/{} in {:.1}s)",
                    data["error"]["message"].as_str().unwrap_or("error"),
                    data["attempt"],
                    data["max_attempts"],
                    data["delay_seconds"].as_f64().unwrap_or(0.0)
                );
            }
            EventType::Error => {
                self.newline();
                eprintln!(
                    "error ({}): {}",
                    data["source"].as_str().unwrap_or("?"),
                    data["error"]["message"].as_str().unwrap_or("")
                );
            }
            EventType::ResponseIncomplete => {
                self.newline();
                eprintln!("(interrupted)");
            }
            EventType::ElicitationRequest => {
                self.newline();
                self.asking = Some(Asked::show(data, session));
            }
            EventType::ElicitationResolved
                if self.asking.as_ref().is_some_and(|a| data["elicitation_id"] == a.elicitation_id.as_str()) =>
            {
                self.asking = None;
                eprintln!("(answered elsewhere: {})", data["action"].as_str().unwrap_or("?"));
            }
            EventType::PolicyDenied => {
                self.newline();
                eprintln!("(denied: {})", data["reason"].as_str().unwrap_or("by a policy"));
            }
            EventType::SessionStatus => match data["status"].as_str().and_then(SessionStatus::parse) {
                Some(SessionStatus::Running) => self.started = true,
                Some(SessionStatus::Idle) if self.started => {
                    self.newline();
                    return Ok(Some(true));
                }
                Some(SessionStatus::Failed) => {
                    self.newline();
                    let e = &data["error"];
                    let code = e["code"].as_str().unwrap_or("error");
                    let message = e["message"].as_str().unwrap_or("");
                    // A harness's message may already begin with its code: say it once.
                    let message = message.strip_prefix(&format!("{code}: ")).unwrap_or(message);
                    eprintln!("turn failed: {code}: {message}");
                    return Ok(Some(false));
                }
                _ => {}
            },
            _ => {}
        }
        Ok(None)
    }
}

fn short(s: &str, max: usize) -> String {
    crate::ids::truncate(&s.replace('\n', " "), max)
}
