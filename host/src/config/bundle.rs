//! Agent bundles, as Omnigent uploads them (multipart `POST /v1/sessions` and `POST /v1/agents`): a gzipped
//! tarball — or a plain tar, or a zip — holding either a single-file agent YAML (`name` + `prompt`, what
//! `omnigent run -f` reads) or Omnigent's `config.yaml` (`spec_version: 1`), beside `AGENTS.md` (the instructions
//! when the config gives none), `skills/<dir>/SKILL.md` and `tools/mcp/*.yaml`. A bundle becomes an ordinary session
//! config: nothing in it is executed, `${VAR}` is not expanded from the server's environment, and its skills are
//! carried inline (their SKILL.md text; other files of a skill's folder are not kept). What of Omnigent's format has
//! no meaning here is refused with its name, never silently dropped.

use std::collections::BTreeMap;
use std::io::Read;

use serde_json::{Map, Value, json};

use super::SessionConfig;

/// Largest bundle accepted, compressed (the multipart body's limit is the upload limit).
const MAX_BUNDLE_BYTES: usize = 25 << 20;
/// Most bytes a bundle may unpack to, and most files: a small archive must not unpack to a flood.
const MAX_UNPACKED_BYTES: u64 = 64 << 20;
const MAX_FILES: usize = 2_000;
/// Context files read as the instructions when a `config.yaml` names none, in Omnigent's order.
const CONTEXT_FILES: [&str; 3] = ["AGENTS.md", "CLAUDE.md", ".cursorrules"];
/// `config.yaml` keys that only steer Omnigent's own runtime (no meaning here): accepted and ignored.
const IGNORED_KEYS: [&str; 6] = ["spec_version", "interaction", "async", "cancellable", "timers", "model_egress"];
/// `llm` keys with no meaning here (the executor's model and auth decide): accepted and ignored.
const IGNORED_LLM_KEYS: [&str; 4] = ["reasoning_effort", "max_completion_tokens", "request_timeout", "retry"];

/// The files of a bundle: relative path → content.
#[derive(Debug)]
pub struct Bundle {
    files: BTreeMap<String, Vec<u8>>,
}

impl Bundle {
    /// Unpacks a bundle in memory (gzip, tar or zip, told apart by their first bytes). Paths must stay inside
    /// the bundle; links, devices and the like are refused; only regular files are kept.
    pub fn unpack(bytes: &[u8]) -> Result<Bundle, String> {
        if bytes.len() > MAX_BUNDLE_BYTES {
            return Err(format!("the bundle is larger than {MAX_BUNDLE_BYTES} bytes"));
        }
        let mut files = match bytes {
            [0x1f, 0x8b, ..] => untar(flate2::read::GzDecoder::new(bytes))?,
            [b'P', b'K', 3, 4, ..] => unzip(bytes)?,
            _ if bytes.len() > 262 && &bytes[257..262] == b"ustar" => untar(bytes)?,
            _ => return Err("the bundle is not a .tar.gz, .tar or .zip archive".into()),
        };
        // A tarball of a folder holds `folder/config.yaml`: its one top folder is the bundle's root.
        let top: Vec<&str> = files.keys().filter_map(|p| p.split_once('/').map(|(t, _)| t)).collect();
        if let Some(first) = top.first()
            && top.len() == files.len()
            && top.iter().all(|t| t == first)
        {
            let prefix = format!("{first}/");
            files = files.into_iter().map(|(p, c)| (p[prefix.len()..].to_string(), c)).collect();
        }
        Ok(Bundle { files })
    }

    fn text(&self, path: &str) -> Result<Option<String>, String> {
        self.files
            .get(path)
            .map(|b| String::from_utf8(b.clone()).map_err(|_| format!("{path} is not UTF-8 text")))
            .transpose()
    }

    /// The first context file the bundle holds (`AGENTS.md`, …): the instructions when its config names none.
    fn context_file(&self) -> Result<Option<String>, String> {
        for file in CONTEXT_FILES {
            if let Some(text) = self.text(file)? {
                return Ok(Some(text));
            }
        }
        Ok(None)
    }

    /// The session config the bundle describes (as the API's `config` JSON, not yet checked).
    pub fn config(&self) -> Result<Value, String> {
        let mut config = match self.text("config.yaml")? {
            Some(text) => from_spec(yaml(&text, "config.yaml")?, self)?,
            None => {
                let singles: Vec<&String> = self
                    .files
                    .keys()
                    .filter(|p| !p.contains('/') && (p.ends_with(".yaml") || p.ends_with(".yml")))
                    .collect();
                let [single] = singles.as_slice() else {
                    return Err(format!(
                        "the bundle needs a config.yaml or exactly one agent YAML at its root; it has {}",
                        if singles.is_empty() { "none".to_string() } else { format!("{singles:?}") }
                    ));
                };
                yaml(&self.text(single)?.unwrap_or_default(), single)?
            }
        };
        self.add_skills(&mut config)?;
        Ok(config)
    }

    /// `skills/<dir>/SKILL.md` → `type: skill` tools with their text inline, keyed by the folder's name.
    fn add_skills(&self, config: &mut Value) -> Result<(), String> {
        let skills: Vec<(String, String)> = self
            .files
            .keys()
            .filter_map(|p| {
                let rest = p.strip_prefix("skills/")?;
                let (dir, file) = rest.split_once('/')?;
                (file == "SKILL.md").then(|| (dir.to_string(), p.clone()))
            })
            .collect();
        if skills.is_empty() {
            return Ok(());
        }
        let tools = config.as_object_mut().ok_or("the config must be a mapping")?.entry("tools").or_insert(json!({}));
        let Some(tools) = tools.as_object_mut() else { return Err("tools must be a mapping".into()) };
        for (key, path) in skills {
            if tools.contains_key(&key) {
                return Err(format!("{path}: a tool named {key:?} exists already"));
            }
            let content = self.text(&path)?.unwrap_or_default();
            tools.insert(key, json!({"type": "skill", "content": content}));
        }
        Ok(())
    }
}

/// A bundle's YAML file, its errors naming the file (`path:line:column: …`).
fn yaml(text: &str, path: &str) -> Result<Value, String> {
    SessionConfig::yaml_from_client(text).map_err(|e| super::ConfigError { origin: path.into(), ..e }.to_string())
}

/// Omnigent's `config.yaml` (`spec_version: 1`) in this server's config format. The keys with a meaning here are
/// carried over; the runtime-only ones are ignored; anything else is refused with its name.
fn from_spec(spec: Value, bundle: &Bundle) -> Result<Value, String> {
    let Value::Object(mut spec) = spec else { return Err("config.yaml must be a mapping".into()) };
    if !spec.contains_key("spec_version") {
        return Err("config.yaml misses spec_version (Omnigent's bundle format)".into());
    }
    let mut out = Map::new();
    let name = spec.remove("name").ok_or("config.yaml must name the agent (`name`)")?;
    out.insert("name".into(), name);
    for key in ["description", "os_env", "compaction", "terminals", "params"] {
        if let Some(v) = spec.remove(key) {
            out.insert(key.into(), v);
        }
    }
    if let Some(v) = spec.remove("skills_filter") {
        out.insert("skills".into(), v);
    }
    let instructions = match (spec.remove("prompt"), spec.remove("instructions")) {
        (Some(p), _) | (None, Some(p)) => Some(p),
        _ => bundle.context_file()?.map(Value::String),
    };
    if let Some(prompt) = instructions {
        out.insert("prompt".into(), prompt);
    }
    out.insert("executor".into(), executor(spec.remove("executor"), spec.remove("llm"))?);
    if let Some(guardrails) = spec.remove("guardrails") {
        out.insert("policies".into(), policies(guardrails)?);
    }
    let mut tools = Map::new();
    if let Some(declared) = spec.remove("tools") {
        let Value::Object(declared) = declared else { return Err("tools must be a mapping".into()) };
        if let Some((key, _)) = declared.iter().find(|(k, _)| !["timeout", "retry"].contains(&k.as_str())) {
            return Err(format!(
                "config.yaml tools.{key}: Omnigent's builtin and sub-agent tool lists are not supported in a bundle \
                 here; declare tools in a single-file agent YAML (`tools: {{name: {{type: …}}}}`)"
            ));
        }
    }
    for path in bundle.files.keys().filter(|p| p.starts_with("tools/mcp/") && p.ends_with(".yaml")) {
        let text = bundle.text(path)?.unwrap_or_default();
        let (key, server) = mcp_server(yaml(&text, path)?, path)?;
        tools.insert(key, server);
    }
    if let Some(code) = bundle
        .files
        .keys()
        .find(|p| p.starts_with("tools/python/") || p.starts_with("tools/typescript/") || p.starts_with("agents/"))
    {
        return Err(format!(
            "{code}: Python/TypeScript tools and sub-agent folders are not supported in a bundle here"
        ));
    }
    if !tools.is_empty() {
        out.insert("tools".into(), Value::Object(tools));
    }
    for ignored in IGNORED_KEYS {
        spec.remove(ignored);
    }
    if let Some(key) = spec.keys().next() {
        return Err(format!("config.yaml: {key:?} is not supported here"));
    }
    Ok(Value::Object(out))
}

/// `executor {type, config {harness, permission_mode}, timeout, max_iterations, …}` and the older `llm {model}` →
/// this server's executor.
fn executor(executor: Option<Value>, llm: Option<Value>) -> Result<Value, String> {
    let mut given = match executor {
        Some(Value::Object(e)) => e,
        None => Map::new(),
        Some(_) => return Err("executor must be a mapping".into()),
    };
    let mut out = Map::new();
    let config = match given.remove("config") {
        Some(Value::Object(c)) => c,
        None => Map::new(),
        Some(_) => return Err("executor.config must be a mapping".into()),
    };
    out.insert("harness".into(), config.get("harness").cloned().unwrap_or_else(|| json!("agent")));
    if let Some(mode) = config.get("permission_mode") {
        out.insert("permission_mode".into(), mode.clone());
    }
    given.remove("type");
    for (from, to) in [("timeout", "turn_timeout_s"), ("max_iterations", "max_steps")] {
        if let Some(v) = given.remove(from) {
            out.insert(to.into(), v);
        }
    }
    // The rest (`model`, `context_window`, `auth`, and this server's own executor keys) as written: the config's
    // check names any it does not know.
    out.extend(given);
    let mut llm = match llm {
        Some(Value::Object(l)) => l,
        None => Map::new(),
        Some(_) => return Err("llm must be a mapping".into()),
    };
    if let Some(model) = llm.remove("model") {
        out.entry("model").or_insert(model);
    }
    if let Some(key) = llm.keys().find(|k| !IGNORED_LLM_KEYS.contains(&k.as_str())) {
        return Err(format!("config.yaml llm.{key} is not supported here (set executor.model and executor.auth)"));
    }
    Ok(Value::Object(out))
}

/// `guardrails.policies {name: {type: function, function: {path, arguments}}}` → `policies {name: {handler,
/// factory_params}}`.
fn policies(guardrails: Value) -> Result<Value, String> {
    let mut out = Map::new();
    let Value::Object(mut guardrails) = guardrails else { return Err("guardrails must be a mapping".into()) };
    guardrails.remove("ask_timeout"); // each policy's own timeout decides here
    let policies = match guardrails.remove("policies") {
        Some(Value::Object(p)) => p,
        None => Map::new(),
        Some(_) => return Err("config.yaml guardrails.policies must be a mapping".into()),
    };
    if let Some(key) = guardrails.keys().next() {
        return Err(format!("config.yaml guardrails.{key} is not supported here"));
    }
    for (name, policy) in policies {
        let handler = policy.pointer("/function/path").or_else(|| policy.get("handler")).cloned();
        let Some(handler) = handler else { return Err(format!("guardrails.policies.{name}: needs function.path")) };
        if let Some(key) = ["on", "condition", "set_labels"].iter().find(|k| policy.get(**k).is_some()) {
            return Err(format!(
                "guardrails.policies.{name}.{key} is not supported here (policies choose their phases)"
            ));
        }
        let mut p = json!({"type": "function", "handler": handler});
        if let Some(args) = policy.pointer("/function/arguments") {
            p["factory_params"] = args.clone();
        }
        out.insert(name, p);
    }
    Ok(Value::Object(out))
}

/// `tools/mcp/<file>.yaml` `{name, url, headers, timeout}` → an MCP tool.
fn mcp_server(server: Value, path: &str) -> Result<(String, Value), String> {
    let name = server.get("name").and_then(Value::as_str).ok_or(format!("{path}: needs name"))?.to_string();
    let url = server.get("url").cloned().ok_or(format!("{path}: needs url"))?;
    let mut tool = json!({"type": "mcp", "url": url});
    if let Some(headers) = server.get("headers") {
        tool["headers"] = headers.clone();
    }
    if let Some(timeout) = server.get("timeout") {
        tool["timeout_s"] = timeout.clone();
    }
    Ok((name, tool))
}

/// The regular files of a tar stream, checked as they are read.
fn untar(reader: impl Read) -> Result<BTreeMap<String, Vec<u8>>, String> {
    let mut archive = tar::Archive::new(reader);
    let mut files = BTreeMap::new();
    let mut total = 0u64;
    for entry in archive.entries().map_err(|e| format!("reading the bundle: {e}"))? {
        let mut entry = entry.map_err(|e| format!("reading the bundle: {e}"))?;
        let path = entry.path().map_err(|e| format!("reading the bundle: {e}"))?.to_string_lossy().to_string();
        match entry.header().entry_type() {
            tar::EntryType::Directory => continue,
            tar::EntryType::Regular | tar::EntryType::Continuous => {}
            // pax/GNU headers are metadata the reader applies itself.
            t if t.is_pax_global_extensions() || t.is_pax_local_extensions() || t.is_gnu_longname() => continue,
            other => return Err(format!("{path}: only files and folders may be in a bundle (found {other:?})")),
        }
        let Some(path) = clean(&path) else { return Err(format!("{path}: a path outside the bundle")) };
        total += entry.size();
        if total > MAX_UNPACKED_BYTES || files.len() >= MAX_FILES {
            return Err(format!("the bundle unpacks to more than {MAX_UNPACKED_BYTES} bytes or {MAX_FILES} files"));
        }
        let mut content = Vec::with_capacity(entry.size() as usize);
        entry.read_to_end(&mut content).map_err(|e| format!("{path}: {e}"))?;
        files.insert(path, content);
    }
    Ok(files)
}

fn unzip(bytes: &[u8]) -> Result<BTreeMap<String, Vec<u8>>, String> {
    let mut archive =
        zip::ZipArchive::new(std::io::Cursor::new(bytes)).map_err(|e| format!("reading the bundle: {e}"))?;
    if archive.len() > MAX_FILES {
        return Err(format!("the bundle holds more than {MAX_FILES} files"));
    }
    let mut files = BTreeMap::new();
    let mut total = 0u64;
    for i in 0..archive.len() {
        let file = archive.by_index(i).map_err(|e| format!("reading the bundle: {e}"))?;
        if file.is_dir() {
            continue;
        }
        let raw = file.name().to_string();
        if file.is_symlink() {
            return Err(format!("{raw}: only files and folders may be in a bundle (found a link)"));
        }
        let Some(path) = clean(&raw) else { return Err(format!("{raw}: a path outside the bundle")) };
        let mut content = Vec::new();
        // Read at most what is left of the budget (a zip's declared sizes are not to be trusted).
        let left = MAX_UNPACKED_BYTES - total;
        file.take(left + 1).read_to_end(&mut content).map_err(|e| format!("{path}: {e}"))?;
        total += content.len() as u64;
        if total > MAX_UNPACKED_BYTES {
            return Err(format!("the bundle unpacks to more than {MAX_UNPACKED_BYTES} bytes"));
        }
        files.insert(path, content);
    }
    Ok(files)
}

/// A bundle path made relative and plain (`./a/b` → `a/b`); None if it is absolute or climbs out.
fn clean(path: &str) -> Option<String> {
    let mut parts = Vec::new();
    for part in path.split('/') {
        match part {
            "" | "." => continue,
            ".." => return None,
            p => parts.push(p),
        }
    }
    (!path.starts_with('/') && !parts.is_empty()).then(|| parts.join("/"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn targz(files: &[(&str, &str)]) -> Vec<u8> {
        let mut builder = tar::Builder::new(flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast()));
        for (path, text) in files {
            let mut header = tar::Header::new_gnu();
            header.set_size(text.len() as u64);
            header.set_mode(0o644);
            header.set_cksum();
            builder.append_data(&mut header, path, text.as_bytes()).unwrap();
        }
        builder.into_inner().unwrap().finish().unwrap()
    }

    #[test]
    fn a_single_file_yaml_with_skills_becomes_a_config() {
        let bundle = targz(&[
            ("./reviewer.yaml", "name: reviewer\nprompt: Review.\nexecutor: {harness: agent, model: gpt-4o-mini}\n"),
            ("./skills/style/SKILL.md", "---\nname: style\ndescription: House style.\n---\nShort names.\n"),
        ]);
        let config = Bundle::unpack(&bundle).unwrap().config().unwrap();
        assert_eq!(config["name"], "reviewer");
        assert_eq!(config["tools"]["style"]["type"], "skill");
        assert!(config["tools"]["style"]["content"].as_str().unwrap().contains("Short names."));
        SessionConfig::from_json(config).unwrap();
    }

    #[test]
    fn omnigents_config_yaml_is_carried_over_and_its_unknown_parts_refused() {
        let bundle = targz(&[
            (
                "agent/config.yaml",
                "spec_version: 1\nname: polly\nexecutor: {type: omnigent, model: gpt-4o-mini, \
              config: {harness: agent}, max_iterations: 9}\nasync: true\nguardrails:\n  policies:\n    calls:\n      \
              type: function\n      function: {path: omnigent.policies.builtins.safety.max_tool_calls_per_session, \
              arguments: {limit: 3}}\n",
            ),
            ("agent/AGENTS.md", "You are polly."),
            ("agent/tools/mcp/docs.yaml", "name: docs\nurl: http://127.0.0.1:9/mcp\ntimeout: 5\n"),
        ]);
        let config = Bundle::unpack(&bundle).unwrap().config().unwrap();
        assert_eq!(config["prompt"], "You are polly.");
        assert_eq!(config["executor"], json!({"harness": "agent", "model": "gpt-4o-mini", "max_steps": 9}));
        assert_eq!(config["policies"]["calls"]["factory_params"], json!({"limit": 3}));
        assert_eq!(config["tools"]["docs"], json!({"type": "mcp", "url": "http://127.0.0.1:9/mcp", "timeout_s": 5}));
        SessionConfig::from_json(config).unwrap();
        for (yaml, says) in [
            ("spec_version: 1\nname: a\ntools: {builtins: [sys_os_shell]}\n", "tools.builtins"),
            ("spec_version: 1\nname: a\nspawn: true\n", "\"spawn\""),
            ("name: a\n", "spec_version"),
            ("spec_version: 1\nname: a\nguardrails: {policies: [x]}\n", "guardrails.policies must be a mapping"),
            ("spec_version: [\n", "config.yaml:"),
        ] {
            let err = Bundle::unpack(&targz(&[("config.yaml", yaml)])).unwrap().config().unwrap_err();
            assert!(err.contains(says), "{err}");
        }
    }

    #[test]
    fn hostile_archives_are_refused() {
        let climbing = {
            // tar::Builder refuses `..` itself: write the name into the header by hand.
            let mut header = tar::Header::new_ustar();
            header.as_ustar_mut().unwrap().name[..13].copy_from_slice(b"../escape.txt");
            header.set_size(1);
            header.set_cksum();
            let mut builder = tar::Builder::new(Vec::new());
            builder.append(&header, &b"x"[..]).unwrap();
            builder.into_inner().unwrap()
        };
        let err = Bundle::unpack(&climbing).unwrap_err();
        assert!(err.contains("outside the bundle"), "{err}");
        let link = {
            let mut header = tar::Header::new_gnu();
            header.set_entry_type(tar::EntryType::Symlink);
            header.set_size(0);
            let mut builder = tar::Builder::new(Vec::new());
            builder.append_link(&mut header, "config.yaml", "/etc/passwd").unwrap();
            builder.into_inner().unwrap()
        };
        assert!(Bundle::unpack(&link).unwrap_err().contains("only files and folders"));
        assert!(Bundle::unpack(b"not an archive").unwrap_err().contains("not a .tar.gz"));
        let two = targz(&[("a.yaml", "name: a\nprompt: p\n"), ("b.yaml", "name: b\nprompt: p\n")]);
        assert!(Bundle::unpack(&two).unwrap().config().unwrap_err().contains("exactly one agent YAML"));
    }

    #[test]
    fn a_zip_works_too() {
        let mut zipped = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
        let options = zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Deflated);
        zipped.start_file("agent.yaml", options).unwrap();
        std::io::Write::write_all(&mut zipped, b"name: z\nprompt: Zipped.\nexecutor: {harness: agent}\n").unwrap();
        let bytes = zipped.finish().unwrap().into_inner();
        assert_eq!(Bundle::unpack(&bytes).unwrap().config().unwrap()["prompt"], "Zipped.");
    }
}
