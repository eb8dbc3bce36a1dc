//! Skills (Omnigent's `type: skill` tools): instructions the model loads when it needs them. Each is a SKILL.md —
//! front matter with `name` and `description`, then the body — given by `path` (the file, or its folder) or inline
//! `content`. The model sees every skill's name and description in its instructions and loads a body with the
//! `load_skill` tool, which goes through the policies like any tool call.

use std::path::Path;

use serde_json::{Value, json};

pub use crate::config::{LOAD_SKILL, Skill};
use crate::config::{SessionConfig, SkillsFilter, SkillsKeyword, ToolConfig, ToolKind, parse_skill};
use crate::sandbox::Confinement;

/// Largest SKILL.md read.
const MAX_SKILL_BYTES: u64 = 256 * 1024;

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
        match text.and_then(|t| parse_skill(&t, key, tool)) {
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

    #[test]
    fn load_skill_returns_a_body_or_names_the_skills() {
        let skills = vec![Skill { name: "code-review".into(), description: "d".into(), body: "Read the diff.".into() }];
        assert_eq!(call(&skills, r#"{"name": "code-review"}"#).unwrap(), "Read the diff.");
        assert!(call(&skills, r#"{"name": "nope"}"#).unwrap_err().contains("Available skills: code-review"));
        assert!(call(&skills, "{}").unwrap_err().contains("missing string argument 'name'"));
    }
}
