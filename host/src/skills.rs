//! Skills (Omnigent's `type: skill` tools): instructions the model loads when it needs them. Each is a SKILL.md —
//! front matter with `name` and `description`, then the body — given by `path` (the file, or its folder) or inline
//! `content`. The model sees every skill's name and description in its instructions and loads a body with the
//! `load_skill` tool, which goes through the policies like any tool call. A skill given by its folder may keep more
//! files beside its SKILL.md (references/, scripts/, assets/): the model reads them with `read_skill_file`.

use std::path::{Component, Path, PathBuf};

use serde_json::{Value, json};

pub use crate::config::{LOAD_SKILL, READ_SKILL_FILE, Skill};
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
            (Some(content), _) => Ok((content.clone(), None)),
            (None, Some(path)) => read(path, place).await,
            (None, None) => Err("needs `path` or `content`".to_string()),
        };
        let parsed = text.and_then(|(t, dir)| parse_skill(&t, key, tool).map(|skill| Skill { dir, ..skill }));
        match parsed {
            Ok(skill) if skills.iter().any(|s| s.name == skill.name) => {
                problems.push(format!("skill {key}: another skill is named {:?}", skill.name))
            }
            Ok(skill) => skills.push(skill),
            Err(why) => problems.push(format!("skill {key}: {why}")),
        }
    }
    (skills, problems)
}

/// A skill's SKILL.md text, and its folder when `path` names one.
async fn read(path: &str, place: Result<&Confinement, &String>) -> Result<(String, Option<PathBuf>), String> {
    let place = place.map_err(|why| format!("cannot read {path}: {why}"))?;
    let mut file = place.cwd.join(path);
    let dir = file.is_dir().then(|| file.clone());
    if dir.is_some() {
        file.push("SKILL.md");
    }
    let real = place.reach.readable(&file)?;
    let bytes = crate::regular_file::read_async(Path::new(&real), MAX_SKILL_BYTES).await.map_err(|e| e.to_string())?;
    let text = String::from_utf8(bytes).map_err(|_| format!("{} is not UTF-8 text", real.display()))?;
    Ok((text, dir))
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

/// The `read_skill_file` tool's description and parameters, when a skill has a folder.
pub fn file_spec(skills: &[Skill]) -> Option<(String, Value)> {
    let names: Vec<&str> = skills.iter().filter(|s| s.dir.is_some()).map(|s| s.name.as_str()).collect();
    if names.is_empty() {
        return None;
    }
    let description = format!(
        "Read a file from a skill's folder (beside SKILL.md, or under references/, scripts/, assets/). Skills with \
         files: {}",
        names.join(", ")
    );
    let parameters = json!({"type": "object", "properties": {
        "skill_name": {"type": "string", "description": "Name of the skill whose file to read"},
        "path": {"type": "string", "description": "Relative path within the skill's folder, e.g. 'references/style-guide.md'"}},
        "required": ["skill_name", "path"]});
    Some((description, parameters))
}

/// A `read_skill_file` call: the file's text, or an error the model can read. The file must lie inside the skill's
/// folder (symlinks resolved) and where the session's tools may read.
pub async fn read_file(
    skills: &[Skill],
    arguments: &str,
    place: Result<&Confinement, &String>,
) -> Result<String, String> {
    let args: Value = serde_json::from_str(arguments).map_err(|e| format!("arguments are not valid JSON: {e}"))?;
    let name = args.get("skill_name").and_then(Value::as_str).ok_or("missing string argument 'skill_name'")?;
    let path =
        args.get("path").and_then(Value::as_str).filter(|p| !p.is_empty()).ok_or("missing string argument 'path'")?;
    let Some(skill) = skills.iter().find(|s| s.name == name) else {
        let names: Vec<&str> = skills.iter().map(|s| s.name.as_str()).collect();
        return Err(format!("skill {name:?} not found. Available skills: {}", names.join(", ")));
    };
    let Some(dir) = &skill.dir else { return Err(format!("skill {name:?} has no folder (it was given inline)")) };
    let relative = Path::new(path);
    if !relative.components().all(|c| matches!(c, Component::Normal(_) | Component::CurDir)) {
        return Err(format!("{path:?} must be a relative path inside the skill's folder"));
    }
    let place = place.map_err(|why| format!("cannot read {path}: {why}"))?;
    let real = place.reach.readable(&dir.join(relative))?;
    let root = std::fs::canonicalize(dir).map_err(|e| format!("the skill's folder: {e}"))?;
    if !real.starts_with(&root) {
        return Err(format!("{path:?} leads outside the skill's folder"));
    }
    let bytes = crate::regular_file::read_async(&real, MAX_SKILL_BYTES).await.map_err(|e| e.to_string())?;
    String::from_utf8(bytes).map_err(|_| format!("{path} is not UTF-8 text"))
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
        let skills = vec![Skill {
            name: "code-review".into(),
            description: "d".into(),
            body: "Read the diff.".into(),
            dir: None,
        }];
        assert_eq!(call(&skills, r#"{"name": "code-review"}"#).unwrap(), "Read the diff.");
        assert!(call(&skills, r#"{"name": "nope"}"#).unwrap_err().contains("Available skills: code-review"));
        assert!(call(&skills, "{}").unwrap_err().contains("missing string argument 'name'"));
    }
}
