//! Model credentials: where a turn's API key comes from, looked up when the turn calls its model (a key set or
//! removed meanwhile applies to the next call, without a restart).
//!
//! The order, for the provider a session's model speaks (`openai` or `anthropic`):
//! 1. the session's `executor.auth`: a key written in it; a `${VAR}` reference (the stored credential `VAR`, then —
//!    when VAR is the provider's usual variable, such as `OPENAI_API_KEY` — the provider's stored credential, then
//!    VAR in the server's environment); `{type: provider, name: N}` (the stored credential N);
//! 2. the stored credential named after the provider (`omnigent auth set openai`);
//! 3. the provider's usual variable in the server's environment (`OPENAI_API_KEY`, `ANTHROPIC_API_KEY`), unless the
//!    server does not read keys from its environment (the background servers the CLI starts do not: a key must
//!    not depend on which shell happened to start the server).
//!
//! A base URL comes from the config's `auth.base_url`, else the credential's own, else (when the environment is
//! read) `OPENAI_BASE_URL` / `ANTHROPIC_BASE_URL`.
//!
//! Native harnesses use only step 1; without it the vendor CLI uses its own login.

mod file;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

pub use file::{CredentialFile, FILE_NAME, Stored, edit, read};

use crate::config::{Auth, AuthKind, CLAUDE_NATIVE, CODEX_NATIVE, ProviderKind, SessionConfig};

/// The usual names of a vendor's credential.
#[derive(Clone, Copy, Debug)]
pub struct Vendor {
    /// The stored credential's name.
    pub name: &'static str,
    /// Its key's variable in an environment.
    pub key_var: &'static str,
    /// Its base URL's variable.
    pub url_var: &'static str,
    /// The vendor's own API, when nothing names another base URL.
    pub default_url: &'static str,
}

pub const OPENAI: Vendor = Vendor {
    name: "openai",
    key_var: "OPENAI_API_KEY",
    url_var: "OPENAI_BASE_URL",
    default_url: "https://api.openai.com/v1",
};
pub const ANTHROPIC: Vendor = Vendor {
    name: "anthropic",
    key_var: "ANTHROPIC_API_KEY",
    url_var: "ANTHROPIC_BASE_URL",
    default_url: "https://api.anthropic.com",
};

impl Vendor {
    /// The vendor whose wire a provider speaks; None for the scripted provider (no key).
    pub fn of(provider: ProviderKind) -> Option<Vendor> {
        match provider {
            ProviderKind::Openai | ProviderKind::OpenaiResponses => Some(OPENAI),
            ProviderKind::Anthropic => Some(ANTHROPIC),
            ProviderKind::Scripted => None,
        }
    }

    /// The vendor whose usual key variable is `var`.
    fn with_key_var(var: &str) -> Option<Vendor> {
        [OPENAI, ANTHROPIC].into_iter().find(|v| v.key_var == var)
    }
}

/// A key found for a turn.
#[derive(Clone)]
pub struct Credential {
    pub api_key: String,
    pub base_url: Option<String>,
    pub source: Source,
}

/// The key never shows in debug output.
impl std::fmt::Debug for Credential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credential")
            .field("api_key", &crate::config::REDACTED)
            .field("base_url", &self.base_url)
            .field("source", &self.source)
            .finish()
    }
}

/// Where a key was found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Source {
    /// Written in the session's config.
    Config,
    /// The stored credential of this name.
    Stored(String),
    /// This variable of the server's environment.
    Environment(String),
}

impl Source {
    /// How `auth list` and the check endpoint name it.
    pub fn describe(&self) -> String {
        match self {
            Source::Config => "the session config".into(),
            Source::Stored(name) => format!("stored credential `{name}`"),
            Source::Environment(var) => format!("{var} in the server's environment"),
        }
    }
}

/// No key resolves: what to say, and what would fix it (also as `POST /v1/credentials/check` answers it).
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct Missing {
    pub message: String,
    /// The stored credential that would resolve it (`omnigent auth set <store_as>`).
    pub store_as: String,
    /// A variable that, set in the user's shell, holds the key to store.
    pub env_var: Option<String>,
}

/// The server's view of the credentials: the file it reads and whether it reads its own environment.
pub struct Credentials {
    file: Option<PathBuf>,
    reads_environment: bool,
    cache: Mutex<Option<(file::Stamp, Arc<CredentialFile>)>>,
}

/// No file, the environment read: in-process servers of tests and embedders.
impl Default for Credentials {
    fn default() -> Self {
        Credentials::new(None, true)
    }
}

impl Credentials {
    /// `file`: the credentials file (None: none is read). `reads_environment`: step 3 and `${VAR}` from the
    /// environment.
    pub fn new(file: Option<PathBuf>, reads_environment: bool) -> Credentials {
        Credentials { file, reads_environment, cache: Mutex::default() }
    }

    pub fn file(&self) -> Option<&Path> {
        self.file.as_deref()
    }

    pub fn reads_environment(&self) -> bool {
        self.reads_environment
    }

    /// The stored credentials, read again when the file changed (one `stat` otherwise).
    pub fn stored(&self) -> Result<Arc<CredentialFile>, String> {
        let Some(path) = &self.file else { return Ok(Arc::default()) };
        let Some(stamp) = file::stamp(path)? else { return Ok(Arc::default()) };
        let mut cache = self.cache.lock().unwrap();
        if let Some((seen, contents)) = cache.as_ref()
            && *seen == stamp
        {
            return Ok(contents.clone());
        }
        let contents = Arc::new(read(path)?);
        *cache = Some((stamp, contents.clone()));
        Ok(contents)
    }

    /// [`Credentials::stored`] for a lookup: an unusable file is the reason the key named `store_as` is missing.
    fn stored_for(&self, store_as: &str) -> Result<Arc<CredentialFile>, Missing> {
        self.stored().map_err(|message| Missing { message, store_as: store_as.into(), env_var: None })
    }

    fn env(&self, var: &str) -> Option<String> {
        self.reads_environment.then(|| std::env::var(var).ok()).flatten().filter(|v| !v.is_empty())
    }

    /// The key a turn of a session with `auth` uses to call `vendor`'s API.
    pub fn resolve(&self, auth: Option<&Auth>, vendor: Vendor) -> Result<Credential, Missing> {
        if let Some(found) = self.explicit(auth, vendor)? {
            return Ok(found);
        }
        let stored = self.stored_for(vendor.name)?;
        let config_url = auth.and_then(|a| a.base_url.clone());
        if let Some(s) = stored.credentials.get(vendor.name) {
            return Ok(self.stored_credential(vendor.name, s, vendor, config_url));
        }
        if let Some(key) = self.env(vendor.key_var) {
            let base_url = config_url.or_else(|| self.env(vendor.url_var));
            return Ok(Credential { api_key: key, base_url, source: Source::Environment(vendor.key_var.into()) });
        }
        Err(Missing {
            message: format!(
                "no API key for {}: no stored credential `{}` ({}), and {}. Set one with `omnigent auth set {}`",
                vendor.name,
                vendor.name,
                self.file_shown(),
                self.environment_lacks(vendor.key_var),
                vendor.name
            ),
            store_as: vendor.name.into(),
            env_var: Some(vendor.key_var.into()),
        })
    }

    /// What the turns of a session with `config` use: a key; None when they need none (the scripted provider) or
    /// use the vendor CLI's own login (a native harness whose config names no key).
    pub fn for_config(&self, config: &SessionConfig) -> Result<Option<Credential>, Missing> {
        let auth = config.executor.auth.as_ref();
        match config.executor.harness.as_str() {
            CLAUDE_NATIVE => self.explicit(auth, ANTHROPIC),
            CODEX_NATIVE => self.explicit(auth, OPENAI),
            _ => match Vendor::of(config.provider()) {
                Some(vendor) => self.resolve(auth, vendor).map(Some),
                None => Ok(None),
            },
        }
    }

    /// Step 1 alone: the key the session's `executor.auth` names, if it names one. Native harnesses use this (and
    /// otherwise the vendor CLI's own login).
    pub fn explicit(&self, auth: Option<&Auth>, vendor: Vendor) -> Result<Option<Credential>, Missing> {
        let Some(auth) = auth else { return Ok(None) };
        let config_url = auth.base_url.clone();
        if auth.kind == AuthKind::Provider {
            let name = auth.name.clone().unwrap_or_default();
            let stored = self.stored_for(&name)?;
            return match stored.credentials.get(&name) {
                Some(s) => Ok(Some(self.stored_credential(&name, s, vendor, config_url))),
                None => Err(Missing {
                    message: format!(
                        "executor.auth names the stored credential `{name}`, which is not in {}: set it with \
                         `omnigent auth set {name}`",
                        self.file_shown()
                    ),
                    store_as: name,
                    env_var: None,
                }),
            };
        }
        if let Some(var) = auth.key_reference() {
            let stored = self.stored_for(var)?;
            let vendor_of_var = Vendor::with_key_var(var);
            if let Some(s) = stored.credentials.get(var) {
                return Ok(Some(self.stored_credential(var, s, vendor, config_url)));
            }
            if let Some(v) = vendor_of_var
                && let Some(s) = stored.credentials.get(v.name)
            {
                return Ok(Some(self.stored_credential(v.name, s, vendor, config_url)));
            }
            if let Some(key) = self.env(var) {
                let base_url = config_url.or_else(|| self.env(vendor.url_var));
                return Ok(Some(Credential { api_key: key, base_url, source: Source::Environment(var.into()) }));
            }
            let store_as = vendor_of_var.map_or(var, |v| v.name).to_string();
            return Err(Missing {
                message: format!(
                    "executor.auth.api_key is ${{{var}}}: there is no stored credential `{store_as}` ({}), and {}. \
                     Set one with `omnigent auth set {store_as}`",
                    self.file_shown(),
                    self.environment_lacks(var)
                ),
                store_as,
                env_var: Some(var.into()),
            });
        }
        // A key written in the config; its base URL, else the environment's as for any key.
        let base_url = config_url.or_else(|| self.env(vendor.url_var));
        Ok(auth.api_key.clone().filter(|k| !k.is_empty()).map(|api_key| Credential {
            api_key,
            base_url,
            source: Source::Config,
        }))
    }

    /// A stored credential, its base URL overridden by the config's and falling back to the environment's.
    fn stored_credential(&self, name: &str, s: &Stored, vendor: Vendor, config_url: Option<String>) -> Credential {
        let base_url = config_url.or_else(|| s.base_url.clone()).or_else(|| self.env(vendor.url_var));
        Credential { api_key: s.api_key.clone(), base_url, source: Source::Stored(name.into()) }
    }

    /// Why the environment did not give the key in `var`, for a message.
    fn environment_lacks(&self, var: &str) -> String {
        if self.reads_environment {
            format!("{var} is not set in the server's environment")
        } else {
            "this server does not read keys from its environment (--no-env-credentials: background servers the CLI \
             starts run so)"
                .into()
        }
    }

    fn file_shown(&self) -> String {
        self.file.as_ref().map_or_else(|| "no credentials file".into(), |p| p.display().to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn auth(kind: AuthKind, key: Option<&str>, name: Option<&str>) -> Auth {
        Auth { kind, api_key: key.map(Into::into), base_url: None, name: name.map(Into::into) }
    }

    fn store(dir: &Path, name: &str, key: &str, base_url: Option<&str>) {
        edit(&dir.join(FILE_NAME), |f| {
            let s = Stored { api_key: key.into(), base_url: base_url.map(Into::into), updated_at: "t".into() };
            f.credentials.insert(name.into(), s);
            Ok(())
        })
        .unwrap();
    }

    #[test]
    fn the_order_is_config_then_stored_then_environment_and_changes_apply_at_once() {
        let dir = tempfile::tempdir().unwrap();
        let creds = Credentials::new(Some(dir.path().join(FILE_NAME)), false);
        let e = creds.resolve(None, OPENAI).err().unwrap();
        assert!(e.message.contains("omnigent auth set openai") && e.message.contains("does not read keys"), "{e:?}");
        assert_eq!((e.store_as.as_str(), e.env_var.as_deref()), ("openai", Some("OPENAI_API_KEY")));
        store(dir.path(), "openai", "sk-stored", Some("http://gw"));
        let c = creds.resolve(None, OPENAI).ok().unwrap();
        assert_eq!((c.api_key.as_str(), c.base_url.as_deref()), ("sk-stored", Some("http://gw")));
        assert_eq!(c.source, Source::Stored("openai".into()));
        // The config's own key wins; its base URL overrides the stored one.
        let mut literal = auth(AuthKind::ApiKey, Some("sk-config"), None);
        assert_eq!(creds.resolve(Some(&literal), OPENAI).ok().unwrap().source, Source::Config);
        literal.api_key = None;
        literal.base_url = Some("http://mine".into());
        let c = creds.resolve(Some(&literal), OPENAI).ok().unwrap();
        assert_eq!((c.api_key.as_str(), c.base_url.as_deref()), ("sk-stored", Some("http://mine")));
        // A change to the file is seen by the next call.
        store(dir.path(), "openai", "sk-rotated", None);
        assert_eq!(creds.resolve(None, OPENAI).ok().unwrap().api_key, "sk-rotated");
        edit(&dir.path().join(FILE_NAME), |f| {
            f.credentials.clear();
            Ok(())
        })
        .unwrap();
        assert!(creds.resolve(None, ANTHROPIC).is_err());
    }

    #[test]
    fn references_and_provider_names_resolve_at_use() {
        let dir = tempfile::tempdir().unwrap();
        let creds = Credentials::new(Some(dir.path().join(FILE_NAME)), true);
        let by_name = auth(AuthKind::Provider, None, Some("gateway"));
        let e = creds.resolve(Some(&by_name), OPENAI).err().unwrap();
        assert!(e.message.contains("omnigent auth set gateway"), "{e:?}");
        store(dir.path(), "gateway", "sk-gw", None);
        assert_eq!(creds.resolve(Some(&by_name), OPENAI).ok().unwrap().api_key, "sk-gw");
        // ${VAR}: the stored credential VAR, the vendor's for its usual variable, then the environment.
        let reference = auth(AuthKind::ApiKey, Some("${OMNIGENT_TEST_CRED_REF}"), None);
        let e = creds.resolve(Some(&reference), OPENAI).err().unwrap();
        assert_eq!(e.env_var.as_deref(), Some("OMNIGENT_TEST_CRED_REF"));
        // SAFETY: a variable name private to this test.
        unsafe { std::env::set_var("OMNIGENT_TEST_CRED_REF", "sk-env") };
        let c = creds.resolve(Some(&reference), OPENAI).ok().unwrap();
        assert_eq!((c.api_key.as_str(), c.source), ("sk-env", Source::Environment("OMNIGENT_TEST_CRED_REF".into())));
        store(dir.path(), "OMNIGENT_TEST_CRED_REF", "sk-named", None);
        assert_eq!(creds.resolve(Some(&reference), OPENAI).ok().unwrap().api_key, "sk-named");
        let usual = auth(AuthKind::ApiKey, Some("${ANTHROPIC_API_KEY}"), None);
        store(dir.path(), "anthropic", "sk-ant", None);
        let c = creds.resolve(Some(&usual), ANTHROPIC).ok().unwrap();
        assert_eq!(c.source, Source::Stored("anthropic".into()));
        // Without the environment, a reference is only the store.
        let strict = Credentials::new(Some(dir.path().join(FILE_NAME)), false);
        let other = auth(AuthKind::ApiKey, Some("${OMNIGENT_TEST_CRED_REF_2}"), None);
        // SAFETY: a variable name private to this test.
        unsafe { std::env::set_var("OMNIGENT_TEST_CRED_REF_2", "sk-env-2") };
        let e = strict.resolve(Some(&other), OPENAI).err().unwrap();
        assert!(e.message.contains("does not read keys from its environment"), "{e:?}");
        // Natives: nothing explicit means the CLI's own login.
        assert!(strict.explicit(None, ANTHROPIC).unwrap().is_none());
    }

    #[test]
    fn a_native_session_uses_its_cli_login_unless_its_config_names_a_key() {
        let dir = tempfile::tempdir().unwrap();
        let creds = Credentials::new(Some(dir.path().join(FILE_NAME)), false);
        store(dir.path(), "anthropic", "sk-ant-stored", None);
        let mut config = SessionConfig::new("n", crate::config::Executor::new(CLAUDE_NATIVE, None));
        // A stored `anthropic` key is for the API harness: the CLI keeps its own login (no surprise API bill).
        assert!(creds.for_config(&config).unwrap().is_none());
        config.executor.auth = Some(auth(AuthKind::Provider, None, Some("anthropic")));
        let c = creds.for_config(&config).unwrap().unwrap();
        assert_eq!(c.api_key, "sk-ant-stored");
        config.executor.auth = Some(auth(AuthKind::Provider, None, Some("absent")));
        assert!(creds.for_config(&config).unwrap_err().message.contains("omnigent auth set absent"));
        // The scripted provider needs nothing.
        let scripted = SessionConfig::new("s", crate::config::Executor::new("agent", Some("scripted".into())));
        assert!(creds.for_config(&scripted).unwrap().is_none());
    }
}
