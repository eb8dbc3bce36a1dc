//! What `omnigent plugin new` writes, embedded in the binary: the project templates (`templates/`) and the guest
//! SDKs they build against, copied from this repository at compile time so an installed `omnigent` needs nothing
//! beside it. `{{name}}`, `{{snake}}` and `{{Camel}}` in a template become the project's name in those cases.

/// A file of a new project: its path inside the project, and its text.
pub struct File {
    pub path: &'static str,
    pub text: &'static str,
}

macro_rules! file {
    ($path:literal, $source:literal) => {
        File { path: $path, text: include_str!($source) }
    };
}

/// The Rust policy SDK (`policies/sdk`) with its WIT, and the lock file the builtins build with (so a new project
/// starts from versions known to work; cargo drops what it does not use).
pub const POLICY_SDK: &[File] = &[
    file!("vendor/omnigent-policy/Cargo.toml", "../../../../policies/sdk/Cargo.toml"),
    file!("vendor/omnigent-policy/README.md", "../../../../policies/sdk/README.md"),
    file!("vendor/omnigent-policy/src/lib.rs", "../../../../policies/sdk/src/lib.rs"),
    file!("vendor/omnigent-policy/src/arena.rs", "../../../../policies/sdk/src/arena.rs"),
    file!("vendor/omnigent-policy/src/testing.rs", "../../../../policies/sdk/src/testing.rs"),
    file!("vendor/omnigent-policy/wit/policy.wit", "../../../../wit/policy/policy.wit"),
    file!("Cargo.lock", "../../../../policies/Cargo.lock"),
];

/// The Rust harness SDK (`harnesses/sdk`) with its WIT and lock file.
pub const HARNESS_SDK: &[File] = &[
    file!("vendor/omnigent-harness/Cargo.toml", "../../../../harnesses/sdk/Cargo.toml"),
    file!("vendor/omnigent-harness/README.md", "../../../../harnesses/sdk/README.md"),
    file!("vendor/omnigent-harness/src/lib.rs", "../../../../harnesses/sdk/src/lib.rs"),
    file!("vendor/omnigent-harness/wit/harness.wit", "../../../../wit/harness/harness.wit"),
    file!("Cargo.lock", "../../../../harnesses/Cargo.lock"),
];

/// The Python policy SDK (`policies/sdk-python`): the author's helper module, the component glue componentize-py
/// builds around it, and the WIT.
pub const PYTHON_POLICY_SDK: &[File] = &[
    file!("vendor/omnigent_policy/omnigent_policy.py", "../../../../policies/sdk-python/omnigent_policy.py"),
    file!(
        "vendor/omnigent_policy/omnigent_policy_component.py",
        "../../../../policies/sdk-python/omnigent_policy_component.py"
    ),
    file!("vendor/omnigent_policy/wit/policy.wit", "../../../../wit/policy/policy.wit"),
];

/// Where `plugin build` finds the Python SDK's pieces inside a project.
pub const PYTHON_SDK_DIR: &str = "vendor/omnigent_policy";
/// The module componentize-py builds the component around (in [`PYTHON_SDK_DIR`]).
pub const PYTHON_COMPONENT_MODULE: &str = "omnigent_policy_component";
/// The author's module, which holds `evaluate`.
pub const PYTHON_POLICY_MODULE: &str = "policy.py";

pub const RUST_POLICY: &[File] = &[
    file!("Cargo.toml", "templates/rust-policy/Cargo.toml"),
    file!("src/lib.rs", "templates/rust-policy/lib.rs"),
    file!("README.md", "templates/rust-policy/README.md"),
    file!("session.yaml", "templates/rust-policy/session.yaml"),
    file!("events.jsonl", "templates/shared/events.jsonl"),
    file!(".gitignore", "templates/shared/gitignore"),
];

pub const RUST_HARNESS: &[File] = &[
    file!("Cargo.toml", "templates/rust-harness/Cargo.toml"),
    file!("src/lib.rs", "templates/rust-harness/lib.rs"),
    file!("README.md", "templates/rust-harness/README.md"),
    file!("session.yaml", "templates/rust-harness/session.yaml"),
    file!("script.jsonl", "templates/rust-harness/script.jsonl"),
    file!(".gitignore", "templates/shared/gitignore"),
];

pub const PYTHON_POLICY: &[File] = &[
    file!("policy.py", "templates/python-policy/policy.py"),
    file!("test_policy.py", "templates/python-policy/test_policy.py"),
    file!("pyproject.toml", "templates/python-policy/pyproject.toml"),
    file!("README.md", "templates/python-policy/README.md"),
    file!("session.yaml", "templates/python-policy/session.yaml"),
    file!("events.jsonl", "templates/shared/events.jsonl"),
    file!(".gitignore", "templates/shared/gitignore"),
];

/// The project's name in the cases templates use.
pub struct Names {
    /// As given: `my-guard`.
    pub name: String,
    /// `my_guard`: the component file and the policy's declared name.
    pub snake: String,
    /// `MyGuard`: the Rust type.
    pub camel: String,
}

impl Names {
    /// Checks a project name: a lowercase letter first, then lowercase letters, digits, `-` or `_`.
    pub fn new(name: &str) -> Result<Names, String> {
        let mut chars = name.chars();
        let first_ok = chars.next().is_some_and(|c| c.is_ascii_lowercase());
        if !first_ok || !name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_') {
            return Err(format!(
                "'{name}' is not a project name here: start with a lowercase letter, then use lowercase letters, \
                 digits, '-' or '_' (e.g. my-guard)"
            ));
        }
        let snake = name.replace('-', "_");
        let camel = snake
            .split('_')
            .filter(|part| !part.is_empty())
            .map(|part| {
                let mut c = part.chars();
                c.next().map(|f| f.to_ascii_uppercase().to_string() + c.as_str()).unwrap_or_default()
            })
            .collect();
        Ok(Names { name: name.to_string(), snake, camel })
    }

    pub fn render(&self, text: &str) -> String {
        text.replace("{{name}}", &self.name).replace("{{snake}}", &self.snake).replace("{{Camel}}", &self.camel)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_take_the_cases_templates_use() {
        let n = Names::new("my-guard_2").unwrap();
        assert_eq!((n.snake.as_str(), n.camel.as_str()), ("my_guard_2", "MyGuard2"));
        assert_eq!(n.render("{{name}} {{snake}} {{Camel}}"), "my-guard_2 my_guard_2 MyGuard2");
        for bad in ["", "My", "9x", "a b", "a/b", "../x", "é"] {
            assert!(Names::new(bad).is_err(), "{bad}");
        }
    }
}
