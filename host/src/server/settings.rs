//! The per-session settings of `PATCH /v1/sessions/{id}` (and `POST /v1/sessions`), read as Omnigent reads them:
//! clear aliases, the reasoning-effort vocabulary, fields accepted for compatibility that mean nothing here.

use super::error::ApiError;

/// Omnigent's reasoning efforts.
pub const REASONING_EFFORTS: [&str; 7] = ["none", "minimal", "low", "medium", "high", "xhigh", "max"];
/// Values that clear a reasoning effort.
const EFFORT_CLEAR: [&str; 1] = ["default"];
/// Values that clear a model override.
const MODEL_CLEAR: [&str; 3] = ["default", "off", "reset"];
/// Longest model name or external id accepted.
const MAX_NAME_CHARS: usize = 200;

/// The settings fields of a PATCH, as sent (a JSON `null` or an absent field leaves a setting unchanged, as in
/// Omnigent).
pub struct SettingsPatch {
    pub reasoning_effort: Option<String>,
    pub model_override: Option<String>,
    pub archived: Option<bool>,
    pub external_session_id: Option<String>,
    pub runner_id: Option<String>,
}

/// What a settings patch changes: `Some(None)` clears.
pub struct Settings {
    pub reasoning_effort: Option<Option<String>>,
    pub model_override: Option<Option<String>>,
    pub archived: Option<bool>,
    pub external_session_id: Option<String>,
}

impl SettingsPatch {
    pub fn read(self) -> Result<Settings, ApiError> {
        if let Some(runner) = self.runner_id.filter(|r| !r.is_empty()) {
            return Err(ApiError::invalid(format!(
                "runner_id {:?}: this server runs its sessions' turns itself and has no registered runners",
                crate::ids::truncate(&runner, 80)
            )));
        }
        let reasoning_effort = self.reasoning_effort.map(|e| reasoning_effort(&e)).transpose()?;
        let model_override = match self.model_override {
            None => None,
            Some(m) if MODEL_CLEAR.contains(&m.trim()) => Some(None),
            Some(m) if m.trim().is_empty() => {
                return Err(ApiError::invalid("model_override must not be blank (use \"default\" to clear it)"));
            }
            Some(m) => {
                crate::ids::check_short_text("model_override", &m, MAX_NAME_CHARS).map_err(ApiError::invalid)?;
                Some(Some(m.trim().to_string()))
            }
        };
        if let Some(id) = &self.external_session_id {
            if id.trim().is_empty() {
                return Err(ApiError::invalid("external_session_id must not be blank"));
            }
            crate::ids::check_short_text("external_session_id", id, MAX_NAME_CHARS).map_err(ApiError::invalid)?;
        }
        Ok(Settings {
            reasoning_effort,
            model_override,
            archived: self.archived,
            external_session_id: self.external_session_id,
        })
    }
}

/// A reasoning effort: one of [`REASONING_EFFORTS`], or None for a clear alias.
pub fn reasoning_effort(value: &str) -> Result<Option<String>, ApiError> {
    let value = value.trim().to_ascii_lowercase();
    if EFFORT_CLEAR.contains(&value.as_str()) {
        return Ok(None);
    }
    if REASONING_EFFORTS.contains(&value.as_str()) {
        return Ok(Some(value));
    }
    Err(ApiError::invalid(format!(
        "reasoning_effort {:?} is not one of {} (or \"default\" to clear it)",
        crate::ids::truncate(&value, 40),
        REASONING_EFFORTS.join(", ")
    )))
}
