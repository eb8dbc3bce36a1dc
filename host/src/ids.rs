//! Identifiers: session ids are `conv_<32 lowercase hex>` (the seed's form); bare hex is accepted on input.

use std::fmt;

/// A session id in canonical form (`conv_` + 32 lowercase hex digits).
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SessionId(String);

#[derive(Debug, thiserror::Error)]
#[error("'{0}' is not a session id: expected conv_<32 hex digits> or 32 hex digits")]
pub struct BadSessionId(pub String);

impl SessionId {
    pub fn new() -> Self {
        SessionId(format!("conv_{}", random_hex()))
    }

    /// Parses `conv_<hex>` or bare `<hex>` (any case); the result is canonical.
    pub fn parse(input: &str) -> Result<Self, BadSessionId> {
        let hex = input.strip_prefix("conv_").unwrap_or(input);
        if hex.len() == 32 && hex.bytes().all(|b| b.is_ascii_hexdigit()) {
            Ok(SessionId(format!("conv_{}", hex.to_ascii_lowercase())))
        } else {
            Err(BadSessionId(truncate(input, 80)))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl Default for SessionId {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Display for SessionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// 32 lowercase hex digits from 128 random bits.
/// 32 hex digits that depend only on `key` (FNV-1a, twice with different bases): the same key gives the same
/// id in every process and version, so an id derived from a CLI's own identifiers survives a restart.
pub fn stable_hex(key: &str) -> String {
    let fnv = |basis: u64| key.bytes().fold(basis, |h, b| (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3));
    format!("{:016x}{:016x}", fnv(0xcbf2_9ce4_8422_2325), fnv(0x6c62_272e_07bb_0142))
}

pub fn random_hex() -> String {
    format!("{:032x}", rand::random::<u128>())
}

/// A prefixed random id, e.g. `msg_<32 hex>`.
pub fn prefixed(prefix: &str) -> String {
    format!("{prefix}_{}", random_hex())
}

/// A new response id that names its session: `resp_<session hex><8 hex>`, so a `previous_response_id` leads back
/// to the session without a lookup table.
pub fn response_id_for(session: &SessionId) -> String {
    format!("resp_{}{}", &session.as_str()["conv_".len()..], &random_hex()[..8])
}

/// The session a response id (made by `response_id_for`) belongs to.
pub fn session_of_response(response_id: &str) -> Option<SessionId> {
    let hex = response_id.strip_prefix("resp_")?;
    SessionId::parse(hex.get(..32)?).ok()
}

/// Checks a short text a client names something with (a title, an author, a path): at most `max_chars`, and no
/// control characters — NUL included, which Postgres cannot store, so both databases accept the same texts.
pub fn check_short_text(field: &str, value: &str, max_chars: usize) -> Result<(), String> {
    if value.chars().count() > max_chars {
        return Err(format!("{field} must be at most {max_chars} characters"));
    }
    if value.chars().any(char::is_control) {
        return Err(format!("{field} must not contain control characters (such as NUL or a newline)"));
    }
    Ok(())
}

/// The id of the agent a session created from an inline config runs (Omnigent gives such a session an agent of
/// its own): `ag_session_<hex>`. `GET /v1/agents/{id}` resolves it to the session's config.
pub fn session_agent_id(session: &SessionId) -> String {
    format!("{SESSION_AGENT_PREFIX}{}", session.as_str().trim_start_matches("conv_"))
}

/// The session whose own agent `agent_id` names, if it names one.
pub fn session_of_agent(agent_id: &str) -> Option<SessionId> {
    SessionId::parse(agent_id.strip_prefix(SESSION_AGENT_PREFIX)?).ok()
}

const SESSION_AGENT_PREFIX: &str = "ag_session_";

/// Checks the name of a stored credential (`omnigent auth set NAME`, `auth: {type: provider, name}`, `${NAME}`):
/// 1 to 64 letters, digits, `_`, `-` or `.`.
pub fn check_credential_name(name: &str) -> Result<(), String> {
    let ok = (1..=64).contains(&name.len())
        && name.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'));
    if ok {
        Ok(())
    } else {
        Err(format!(
            "credential name {:?} must be 1 to 64 letters, digits, `_`, `-` or `.` (e.g. openai, anthropic, my-gateway)",
            truncate(name, 80)
        ))
    }
}

/// Shortens user input quoted back in error messages.
pub fn truncate(s: &str, max_chars: usize) -> String {
    if s.chars().count() <= max_chars {
        s.to_string()
    } else {
        let mut out: String = s.chars().take(max_chars).collect();
        out.push('…');
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_prefixed_and_bare_hex_and_canonicalizes() {
        let id = SessionId::new();
        assert_eq!(SessionId::parse(id.as_str()).unwrap(), id);
        let bare = &id.as_str()[5..];
        assert_eq!(SessionId::parse(bare).unwrap(), id);
        assert_eq!(SessionId::parse(&bare.to_uppercase()).unwrap(), id);
    }

    #[test]
    fn a_response_id_leads_back_to_its_session() {
        let id = SessionId::new();
        let response = response_id_for(&id);
        assert_eq!(session_of_response(&response), Some(id));
        assert_eq!(session_of_response("resp_short"), None);
        assert_eq!(session_of_response("msg_0123"), None);
    }

    #[test]
    fn short_texts_are_bounded_and_printable() {
        assert!(check_short_text("title", "a title", 10).is_ok());
        assert!(check_short_text("title", "ünïcödé", 7).is_ok());
        assert!(check_short_text("title", "too long", 3).unwrap_err().contains("at most 3"));
        assert!(check_short_text("created_by", "a\0b", 10).unwrap_err().contains("created_by must not contain"));
        assert!(check_short_text("path", "a\nb", 10).is_err());
    }

    #[test]
    fn rejects_garbage() {
        for bad in ["", "conv_", "conv_xyz", "conv_0123", &"a".repeat(33), "../etc/passwd"] {
            assert!(SessionId::parse(bad).is_err(), "{bad}");
        }
    }
}
