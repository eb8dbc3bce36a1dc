//! The two things the bridge reads off Claude's screen, and nothing else: whether the composer is there (the row
//! between two horizontal rules that starts with `❯`), and what draft it holds. Everything about what Claude did
//! comes from hooks and the transcript; screen layouts change between versions, so this stays small and tested.

/// The composer's draft if the composer is on screen (`Some("")` when empty); None while a dialog or the
/// start-up screen covers it.
pub fn composer(screen: &str) -> Option<String> {
    let lines: Vec<&str> = screen.lines().collect();
    let rule = |l: &str| {
        let t = l.trim();
        t.chars().count() >= 10 && t.chars().all(|c| c == '─')
    };
    for (i, line) in lines.iter().enumerate() {
        let Some(rest) = line.trim_start().strip_prefix('❯') else { continue };
        if i == 0 || !rule(lines[i - 1]) {
            continue;
        }
        // The draft runs until the closing rule.
        let mut draft = vec![rest.trim_matches(|c: char| c.is_whitespace() || c == '\u{a0}').to_string()];
        for more in &lines[i + 1..] {
            if rule(more) {
                return Some(draft.join("\n").trim().to_string());
            }
            draft.push(more.trim().to_string());
        }
    }
    None
}

/// The last `n` non-empty lines of the screen (for an error that says what the terminal showed).
pub fn last_lines(screen: &str, n: usize) -> String {
    let lines: Vec<&str> = screen.lines().map(str::trim_end).filter(|l| !l.trim().is_empty()).collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    const RULE: &str = "────────────────────────────────────────";

    #[test]
    fn an_empty_composer_is_ready() {
        let screen = format!("│ Welcome back! │\n{RULE}\n❯\u{a0} \n{RULE}\n  ? for shortcuts\n");
        assert_eq!(composer(&screen), Some(String::new()));
    }

    #[test]
    fn a_draft_is_read() {
        let screen = format!("{RULE}\n❯ [Pasted text #1 +111 lines]\n{RULE}\n");
        assert_eq!(composer(&screen).as_deref(), Some("[Pasted text #1 +111 lines]"));
    }

    #[test]
    fn a_dialog_is_not_a_composer() {
        let screen = "Do you want to proceed?\n❯ 1. Yes\n  2. No\n";
        assert_eq!(composer(screen), None);
        assert_eq!(last_lines(screen, 2), "❯ 1. Yes\n  2. No");
    }
}
