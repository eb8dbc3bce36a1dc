//! The per-session settings of `PATCH /v1/sessions/{id}` (and `POST /v1/sessions`), read as Omnigent reads them:
//! clear aliases, the reasoning-effort vocabulary, fields accepted for compatibility that mean nothing here.

use super::error::ApiError;

/// Omnigent's reasoning efforts.
const REASONING_EFFORTS: [&str; 7] = ["none", "minimal", "low", "medium", "high", "xhigh", "max"];
/// Values that clear a reasoning effort.
const EFFORT_CLEAR: [&str; 1] = ["default"];
/// Values that clear a model override.
const MODEL_CLEAR: [&str; 3] = ["default", "off", "reset"];
/// Longest model name or external id accepted.
const MAX_NAME_CHARS: usize = 200;

// Each reads one field as sent (`None`: absent or `null`, which leaves a setting unchanged, as in Omnigent) into
// the change it makes (`Some(None)`: cleared).

/// `model_override`: a model, or `default` / `off` / `reset` to clear it; blank is refused.
pub fn model_override(value: Option<String>) -> Result<Option<Option<String>>, ApiError> {
    let Some(model) = value else { return Ok(None) };
    let model = model.trim();
    if MODEL_CLEAR.contains(&model) {
        return Ok(Some(None));
    }
    if model.is_empty() {
        return Err(ApiError::invalid("model_override must not be blank (use \"default\" to clear it)"));
    }
    crate::ids::check_short_text("model_override", model, MAX_NAME_CHARS).map_err(ApiError::invalid)?;
    Ok(Some(Some(model.to_string())))
}

/// `external_session_id`: not blank, one short line.
pub fn external_session_id(value: Option<String>) -> Result<Option<String>, ApiError> {
    if let Some(id) = &value {
        if id.trim().is_empty() {
            return Err(ApiError::invalid("external_session_id must not be blank"));
        }
        crate::ids::check_short_text("external_session_id", id, MAX_NAME_CHARS).map_err(ApiError::invalid)?;
    }
    Ok(value)
}

/// `reasoning_effort`: one of [`REASONING_EFFORTS`] (any case), or `default` to clear it.
pub fn reasoning_effort(value: Option<String>) -> Result<Option<Option<String>>, ApiError> {
    let Some(value) = value else { return Ok(None) };
    let value = value.trim().to_ascii_lowercase();
    if EFFORT_CLEAR.contains(&value.as_str()) {
        return Ok(Some(None));
    }
    if REASONING_EFFORTS.contains(&value.as_str()) {
        return Ok(Some(Some(value)));
    }
    Err(ApiError::invalid(format!(
        "reasoning_effort {:?} is not one of {} (or \"default\" to clear it)",
        crate::ids::truncate(&value, 40),
        REASONING_EFFORTS.join(", ")
    )))
}
