//! A skill's SKILL.md (Omnigent's `type: skill` tools): front matter with `name` and `description`, then the body.
//! Read here so a config with a bad inline skill is refused before any session runs; `crate::skills` offers them.

use serde::Deserialize;

use super::ToolConfig;

/// The tool the model loads a skill with (Omnigent's name).
pub const LOAD_SKILL: &str = "load_skill";
/// The tool that reads a file beside a skill's SKILL.md (offered when a skill has a folder).
pub const READ_SKILL_FILE: &str = "read_skill_file";

const MAX_NAME_CHARS: usize = 64;
const MAX_DESCRIPTION_CHARS: usize = 1024;

/// A skill ready to offer.
#[derive(Clone, Debug, PartialEq)]
pub struct Skill {
    pub name: String,
    pub description: String,
    pub body: String,
    /// The folder of a skill given by `path` (its other files are read with `read_skill_file`).
    pub dir: Option<std::path::PathBuf>,
}

#[derive(Deserialize)]
struct FrontMatter {
    name: Option<String>,
    description: Option<String>,
}

/// Reads a SKILL.md text: front matter (optional for a plain markdown file, whose name is then the tool's key and
/// description the tool's own), then the body.
pub fn parse_skill(text: &str, key: &str, tool: &ToolConfig) -> Result<Skill, String> {
    let (front, body) = match split_front_matter(text) {
        Some((yaml, body)) => {
            let front: FrontMatter =
                serde_norway::from_str(yaml).map_err(|e| format!("its front matter is not valid YAML: {e}"))?;
            (front, body)
        }
        None => (FrontMatter { name: None, description: None }, text),
    };
    let name = front.name.unwrap_or_else(|| key.to_string());
    let name_ok = !name.is_empty()
        && name.chars().count() <= MAX_NAME_CHARS
        && name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_');
    if !name_ok {
        return Err(format!("name {name:?}: at most {MAX_NAME_CHARS} lowercase letters, digits, '-' or '_'"));
    }
    let description = front.description.or_else(|| tool.description.clone()).unwrap_or_default();
    if description.trim().is_empty() {
        return Err("needs a description (front matter `description`, or the tool's) — the model chooses by it".into());
    }
    if description.chars().count() > MAX_DESCRIPTION_CHARS {
        return Err(format!("description: at most {MAX_DESCRIPTION_CHARS} characters"));
    }
    Ok(Skill { name, description: description.trim().to_string(), body: body.trim().to_string(), dir: None })
}

/// `---\n<yaml>\n---\n<body>`; None when the text has no front matter.
fn split_front_matter(text: &str) -> Option<(&str, &str)> {
    let rest = text.strip_prefix("---\n").or_else(|| text.strip_prefix("---\r\n"))?;
    let end = rest.find("\n---")?;
    let after = &rest[end + 4..];
    let body = after.strip_prefix('\n').or_else(|| after.strip_prefix("\r\n")).unwrap_or(after);
    Some((&rest[..end], body))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::ToolKind;

    fn tool(description: Option<&str>) -> ToolConfig {
        ToolConfig { kind: ToolKind::Skill, description: description.map(str::to_string), ..ToolConfig::default() }
    }

    #[test]
    fn front_matter_names_and_describes_a_skill_and_a_plain_file_takes_the_tools() {
        let text = "---\nname: code-review\ndescription: How we review code.\n---\n# Review\nRead the diff.\n";
        let s = parse_skill(text, "key", &tool(None)).unwrap();
        assert_eq!((s.name.as_str(), s.description.as_str()), ("code-review", "How we review code."));
        assert_eq!(s.body, "# Review\nRead the diff.");
        let plain = parse_skill("Use tabs.", "sql_style", &tool(Some("House SQL style"))).unwrap();
        assert_eq!((plain.name.as_str(), plain.body.as_str()), ("sql_style", "Use tabs."));
        assert!(parse_skill("Use tabs.", "x", &tool(None)).unwrap_err().contains("needs a description"));
        assert!(
            parse_skill("---\nname: Bad Name\ndescription: d\n---\n", "x", &tool(None)).unwrap_err().contains("name")
        );
    }
}
