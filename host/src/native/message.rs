//! The message a native turn delivers: the user's messages since the last answer, as one text a CLI takes.

use serde_json::Value;

use crate::ids::SessionId;
use crate::record::Item;
use crate::session::Sessions;
use crate::store::Page;

/// The user messages this turn answers: those after the last thing that was not a user message.
pub async fn pending_text(sessions: &Sessions, id: &SessionId) -> Result<String, String> {
    let page = Page { limit: 100, after: None, before: None, descending: true };
    let (items, _) = sessions.store().list_items(id, &page).await.map_err(|e| e.to_string())?;
    let mut texts: Vec<String> = items
        .iter()
        .take_while(|i: &&Item| i.item_type == "message" && i.data["role"] != "assistant")
        .map(|i| user_text(&i.data["content"]))
        .collect();
    texts.reverse();
    Ok(texts.join("\n\n"))
}

fn user_text(content: &Value) -> String {
    match content {
        Value::String(s) => s.clone(),
        Value::Array(parts) => parts.iter().filter_map(|p| p["text"].as_str()).collect::<Vec<_>>().join("\n"),
        _ => String::new(),
    }
}

/// What a paste must be for the composer: newlines as `\n`, no control characters but tabs.
pub fn normalize(text: &str) -> String {
    text.replace("\r\n", "\n")
        .replace('\r', "\n")
        .chars()
        .filter(|c| !c.is_control() || *c == '\n' || *c == '\t')
        .collect()
}

/// Whether two messages are the same once normalized (a CLI may trim or re-encode newlines).
pub fn same(a: &str, b: &str) -> bool {
    normalize(a).trim() == normalize(b).trim()
}

#[cfg(test)]
mod tests {
    #[test]
    fn pasted_text_keeps_newlines_and_tabs_only() {
        assert_eq!(super::normalize("a\r\nb\rc\td\x07e\x1b[1m"), "a\nb\nc\tde[1m");
        assert!(super::same("  hi\r\n", "hi\n"));
    }
}
