//! Skills (Omnigent's `type: skill` tools): instructions the model loads when it needs them. Each is a SKILL.md —
//! front matter with `name` and `description`, then the body — given by `path` (the file, or its folder) or inline
//! `content`. The model sees every skill's name and description in its instructions and loads a body with the
//! `load_skill` tool, which goes through the policies like any tool call.

use std::path::Path;

use serde::Deserialize;
use serde_json::{Value, json};

use crate::config::{SessionConfig, SkillsFilter, SkillsKeyword, ToolConfig, ToolKind};
use crate::sandbox::Confinement;

/// The tool the model loads a skill with (Omnigent's name).
pub const LOAD_SKILL: &str = "load_skill";

/// Largest SKILL.md read.
const MAX_SKILL_BYTES: u64 = 256 * 1024;
const MAX_NAME_CHARS: usize = 64;
const MAX_DESCRIPTION_CHARS: usize = 1024;

/// A skill ready to offer.
#[derive(Clone, Debug, PartialEq)]
pub struct Skill {
    pub name: String,
    pub description: String,
    pub body: String,
}

#[derive(Deserialize)]
struct FrontMatter {
    name: Option<String>,
    description: Option<String>,
}

/// Reads a SKILL.md text: front matter (optional for a plain markdown file, whose name is then the tool's key and
/// description the tool's own), then the body.
pub fn parse(text: &str, key: &str, tool: &ToolConfig) -> Result<Skill, String> {
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
    Ok(Skill { name, description: description.trim().to_string(), body: body.trim().to_string() })
}

/// `---\n<yaml>\n---\n<body>`; None when the text has no front matter.
fn split_front_matter(text: &str) -> Option<(&str, &str)> {
    let rest = text.strip_prefix("---\n").or_else(|| text.strip_prefix("---\r\n"))?;
    let end = rest.find("\n---")?;
    let after = &rest[end + 4..];
    let body = after.strip_prefix('\n').or_else(|| after.strip_prefix("\r\n")).unwrap_or(after);
    Some((&rest[..end], body))
}

/// The skill tools of a config that its top-level `skills:` lets through.
pub fn declared(config: &SessionConfig) -> impl Iterator<Item = (&String, &ToolConfig)> {
    config.tools.iter().filter(move |(key, t)| {
        t.kind == ToolKind::Skill
            && match &config.skills {
                None | Some(SkillsFilter::Keyword(SkillsKeyword::All)) => true,
                Some(SkillsFilter::Keyword(SkillsKeyword::None)) => false,
                Some(SkillsFilter::Names(names)) => names.iter().any(|n| n == *key),
            }
    })
}

/// The session's skills, read for a turn. A `path` is read only where the session's tools may read (so a config
/// cannot show the model a file its tools could not open). Each skill that cannot be read is left out with why.
pub async fn load(config: &SessionConfig, place: Result<&Confinement, &String>) -> (Vec<Skill>, Vec<String>) {
    let mut skills: Vec<Skill> = Vec::new();
    let mut problems = Vec::new();
    for (key, tool) in declared(config) {
        let text = match (&tool.content, &tool.path) {
            (Some(content), _) => Ok(content.clone()),
            (None, Some(path)) => read(path, place).await,
            (None, None) => Err("needs `path` or `content`".to_string()),
        };
        match text.and_then(|t| parse(&t, key, tool)) {
            Ok(skill) if skills.iter().any(|s| s.name == skill.name) => {
                problems.push(format!("skill {key}: another skill is named {:?}", skill.name))
            }
            Ok(skill) => skills.push(skill),
            Err(why) => problems.push(format!("skill {key}: {why}")),
        }
    }
    (skills, problems)
}

async fn read(path: &str, place: Result<&Confinement, &String>) -> Result<String, String> {
    let place = place.map_err(|why| format!("cannot read {path}: {why}"))?;
    let mut file = place.cwd.join(path);
    if file.is_dir() {
        file.push("SKILL.md");
    }
    let real = place.reach.readable(&file)?;
    let bytes = crate::regular_file::read_async(Path::new(&real), MAX_SKILL_BYTES).await.map_err(|e| e.to_string())?;
    String::from_utf8(bytes).map_err(|_| format!("{} is not UTF-8 text", real.display()))
}

/// What the instructions say about the skills.
pub fn instructions(skills: &[Skill]) -> String {
    let mut text = format!("Available skills (use the {LOAD_SKILL} tool to load one):");
    for s in skills {
        text.push_str(&format!("\n- {}: {}", s.name, s.description));
    }
    text
}

/// The `load_skill` tool's description and parameters.
pub fn spec(skills: &[Skill]) -> (String, Value) {
    let names: Vec<&str> = skills.iter().map(|s| s.name.as_str()).collect();
    let description = format!("Load a skill's full instructions by name. Available skills: {}", names.join(", "));
    let parameters = json!({"type": "object", "properties": {"name": {"type": "string",
        "description": "The skill name to load"}}, "required": ["name"]});
    (description, parameters)
}

/// A `load_skill` call: the skill's body, or an error the model can read.
pub fn call(skills: &[Skill], arguments: &str) -> Result<String, String> {
    let args: Value = serde_json::from_str(arguments).map_err(|e| format!("arguments are not valid JSON: {e}"))?;
    let name = args.get("name").and_then(Value::as_str).ok_or("missing string argument 'name'")?;
    match skills.iter().find(|s| s.name == name) {
        Some(skill) => Ok(skill.body.clone()),
        None => {
            let names: Vec<&str> = skills.iter().map(|s| s.name.as_str()).collect();
            Err(format!("skill {name:?} not found. Available skills: {}", names.join(", ")))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tool(description: Option<&str>) -> ToolConfig {
        ToolConfig { kind: ToolKind::Skill, description: description.map(str::to_string), ..ToolConfig::default() }
    }

    #[test]
    fn front_matter_names_and_describes_a_skill_and_a_plain_file_takes_the_tools() {
        let text = "---\nname: code-review\ndescription: How we review code.\n---\n# Review\nRead the diff.\n";
        let s = parse(text, "key", &tool(None)).unwrap();
        assert_eq!((s.name.as_str(), s.description.as_str()), ("code-review", "How we review code."));
        assert_eq!(s.body, "# Review\nRead the diff.");
        let plain = parse("Use tabs.", "sql_style", &tool(Some("House SQL style"))).unwrap();
        assert_eq!((plain.name.as_str(), plain.body.as_str()), ("sql_style", "Use tabs."));
        assert!(parse("Use tabs.", "x", &tool(None)).unwrap_err().contains("needs a description"));
        assert!(parse("---\nname: Bad Name\ndescription: d\n---\n", "x", &tool(None)).unwrap_err().contains("name"));
        let skills = vec![s];
        assert_eq!(call(&skills, r#"{"name": "code-review"}"#).unwrap(), "# Review\nRead the diff.");
        assert!(call(&skills, r#"{"name": "nope"}"#).unwrap_err().contains("Available skills: code-review"));
    }
}
