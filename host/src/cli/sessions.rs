//! `omnigent sessions list | show | delete`.

use std::process::ExitCode;

use reqwest::Method;
use serde_json::Value;

use super::SessionsCommand;
use super::client::Client;

pub(super) async fn run(cmd: SessionsCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        SessionsCommand::List { status, limit, json, client } => {
            let client = Client::connect(&client).await?;
            let mut path = format!("/v1/sessions?limit={limit}");
            if let Some(s) = status {
                path.push_str(&format!("&status={}", encode(&s)));
            }
            let list = client.request(Method::GET, &path, None).await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&list)?);
            } else {
                print_table(list["data"].as_array().map(Vec::as_slice).unwrap_or_default());
            }
        }
        SessionsCommand::Show { id, json, events, client } => {
            let client = Client::connect(&client).await?;
            let snapshot = client.request(Method::GET, &format!("/v1/sessions/{}", encode(&id)), None).await?;
            if events {
                print_events(&client, &id, snapshot["last_seq"].as_i64().unwrap_or(0)).await?;
            } else if json {
                println!("{}", serde_json::to_string_pretty(&snapshot)?);
            } else {
                print_snapshot(&snapshot);
            }
        }
        SessionsCommand::Delete { id, json, client } => {
            let client = Client::connect(&client).await?;
            let answer = client.request(Method::DELETE, &format!("/v1/sessions/{}", encode(&id)), None).await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&answer)?);
            } else {
                println!("deleted {}", answer["id"].as_str().unwrap_or(&id));
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// The session's log, event by event up to `last` (its newest when asked), one JSON object per line: replayed from
/// the stream, this server's own events included.
async fn print_events(client: &Client, id: &str, last: i64) -> anyhow::Result<()> {
    if last == 0 {
        return Ok(());
    }
    let response = client.stream(&format!("/v1/sessions/{}/stream?after=0&extensions=true", encode(id))).await?;
    let mut frames = crate::sse_reader::SseReader::new(response);
    while let Some(frame) = frames.next().await? {
        // Frames without an id are not the log's (the ready heartbeat, a pending question shown again).
        let Some(seq) = frame.id.as_deref().and_then(|i| i.parse::<i64>().ok()) else { continue };
        println!("{}", frame.data);
        if seq >= last {
            return Ok(());
        }
    }
    anyhow::bail!("the stream ended before event {last}")
}

/// Percent-encodes a path or query component.
pub(super) fn encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

fn print_table(rows: &[Value]) {
    if rows.is_empty() {
        println!("no sessions");
        return;
    }
    println!("{:<37}  {:<8}  {:<20}  TITLE", "ID", "STATUS", "UPDATED");
    for row in rows {
        println!(
            "{:<37}  {:<8}  {:<20}  {}",
            row["id"].as_str().unwrap_or(""),
            row["status"].as_str().unwrap_or(""),
            time(row["updated_at"].as_i64().unwrap_or(0)),
            row["title"].as_str().unwrap_or("-")
        );
    }
}

fn print_snapshot(s: &Value) {
    println!("id:       {}", s["id"].as_str().unwrap_or(""));
    println!("title:    {}", s["title"].as_str().unwrap_or("-"));
    println!("status:   {}", s["status"].as_str().unwrap_or(""));
    if let Some(err) = s["last_task_error"].as_object() {
        println!(
            "error:    {}: {}",
            err.get("code").and_then(Value::as_str).unwrap_or(""),
            err.get("message").and_then(Value::as_str).unwrap_or("")
        );
    }
    println!("created:  {}", time(s["created_at"].as_i64().unwrap_or(0)));
    println!("updated:  {}", time(s["updated_at"].as_i64().unwrap_or(0)));
    if let Some(labels) = s["labels"].as_object().filter(|l| !l.is_empty()) {
        let text: Vec<String> = labels
            .iter()
            .map(|(k, v)| format!("{k}={}", v.as_str().map(str::to_string).unwrap_or(v.to_string())))
            .collect();
        println!("labels:   {}", text.join(", "));
    }
    if let Some(harness) = s["harness"].as_str() {
        println!("harness:  {harness}");
    }
    let items = s["items"].as_array().map(Vec::as_slice).unwrap_or_default();
    println!("items:    {}", items.len());
    for item in items {
        println!("  {}", item_line(item));
    }
}

/// One transcript item in a line: who said what.
pub(super) fn item_line(item: &Value) -> String {
    let data = &item["data"];
    match item["type"].as_str().unwrap_or("") {
        "message" => {
            let text: Vec<&str> = data["content"]
                .as_array()
                .map(|parts| parts.iter().filter_map(|p| p["text"].as_str()).collect())
                .unwrap_or_default();
            format!("{}: {}", data["role"].as_str().unwrap_or("?"), text.join(" "))
        }
        "function_call" => {
            format!("call {}({})", data["name"].as_str().unwrap_or("?"), data["arguments"].as_str().unwrap_or(""))
        }
        "function_call_output" => {
            format!("result {}: {}", data["call_id"].as_str().unwrap_or("?"), data["output"].as_str().unwrap_or(""))
        }
        other => format!("{other}: {data}"),
    }
}

/// Unix seconds as `YYYY-MM-DD HH:MM:SS` UTC.
fn time(secs: i64) -> String {
    let crate::record::UtcTime { year, month, day, hour, minute, second } = crate::record::UtcTime::of_secs(secs);
    format!("{year:04}-{month:02}-{day:02} {hour:02}:{minute:02}:{second:02}")
}

#[cfg(test)]
mod tests {
    #[test]
    fn formats_utc_times() {
        assert_eq!(super::time(0), "1970-01-01 00:00:00");
        assert_eq!(super::time(1_795_000_000), "2026-11-18 11:06:40");
    }

    #[test]
    fn encodes_path_components() {
        assert_eq!(super::encode("conv_ab/../x"), "conv_ab%2F..%2Fx");
    }
}
