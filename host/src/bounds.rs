//! The ranges of every number a user may configure that the host turns into a duration or a size: one home, so
//! the limits are documented once and no deadline arithmetic can overflow.

/// Longest turn (a week).
pub const MAX_TURN_TIMEOUT_S: u64 = 7 * 24 * 60 * 60;
/// Longest a builtin tool may run (a day).
pub const MAX_TOOL_TIMEOUT_S: u64 = 24 * 60 * 60;
/// Most output a builtin tool may return to the model (16 MiB).
pub const MAX_TOOL_OUTPUT_BYTES: u64 = 16 << 20;
/// Longest a question may wait for a human (30 days).
pub const MAX_ASK_TIMEOUT_S: u64 = 30 * 24 * 60 * 60;
/// Largest context window a config may declare (10 million tokens).
pub const MAX_CONTEXT_WINDOW: u64 = 10_000_000;
/// Most recent exchanges compaction may keep word for word.
pub const MAX_RECENT_WINDOW: u64 = 1000;
/// Longest pause of the scripted provider before each streamed word (10 s).
pub const MAX_SCRIPT_DELAY_MS: u64 = 10_000;
/// Largest `.wasm` component file (harness or policy) a session may name: room for a Python policy, which carries
/// its interpreter (~18 MB built by componentize-py).
pub const MAX_COMPONENT_BYTES: u64 = 64 << 20;
/// Longest one policy evaluation may take (a minute).
pub const MAX_POLICY_TIMEOUT_MS: u64 = 60_000;

/// A configured number checked against `1..=max`; the error names the field and the range.
pub fn within(field: &str, value: Option<u64>, max: u64, unit: &str) -> Result<(), String> {
    match value {
        Some(v) if !(1..=max).contains(&v) => Err(format!("{field} must be between 1 and {max} {unit}, got {v}")),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_range_is_inclusive_and_named() {
        assert!(within("a", Some(1), 5, "s").is_ok());
        assert!(within("a", Some(5), 5, "s").is_ok());
        assert!(within("a", None, 5, "s").is_ok());
        assert_eq!(within("x.y", Some(0), 5, "seconds").unwrap_err(), "x.y must be between 1 and 5 seconds, got 0");
        assert!(within("a", Some(u64::MAX), 5, "s").unwrap_err().contains("18446744073709551615"));
    }
}
