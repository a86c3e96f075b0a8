//! The coaching policy: thresholds, cooldowns and limits, read from the `[policy]` table
//! of a TOML file (`keel replay --config`, `keel serve --config`). Every field has a
//! default; `keel.example.toml` documents them.

use std::path::Path;

use serde::{Deserialize, Serialize};

/// The policy's defaults are the product's: see `product.md`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Policy {
    /// Call time before a cleared nudge kind may be raised again (ms).
    pub cooldown_ms: u64,
    /// How long a one-shot nudge (avoid_blanket_fault, termination_premature) stays up (ms).
    pub display_ms: u64,
    /// Boundary warnings the agent gives before ending an abusive call is permitted.
    pub warnings_allowed: u32,
    /// The agent's authority limit for refunds and credits, in the call's currency.
    pub authority_limit: f64,
    /// Delay after the call at which a follow-up is due (ms).
    pub follow_up_ms: u64,
    /// Agent pace above which `slow_down` is raised (words per minute).
    pub pace_limit_wpm: f64,
    /// Fewest words in an agent segment for its pace to count.
    pub pace_min_words: usize,
    /// Customer temperature (0-1) from which the customer counts as agitated.
    pub agitated_at: f64,
}

impl Default for Policy {
    fn default() -> Self {
        Policy {
            cooldown_ms: 30_000,
            display_ms: 10_000,
            warnings_allowed: 2,
            authority_limit: 500.0,
            follow_up_ms: 24 * 3_600_000,
            pace_limit_wpm: 180.0,
            pace_min_words: 8,
            agitated_at: 0.4,
        }
    }
}

/// The configuration file: other tables (the server's) are not the policy's business.
#[derive(Deserialize, Default)]
struct File {
    #[serde(default)]
    policy: Policy,
}

/// A configuration file that could not be used.
#[derive(Debug, thiserror::Error)]
#[error("{file}:{line}: {reason}")]
pub struct ConfigError {
    pub file: String,
    pub line: usize,
    pub reason: String,
}

/// Reads a configuration file: its name (for errors) and its text.
pub fn read(path: &Path) -> Result<(String, String), ConfigError> {
    let file = path.display().to_string();
    let src = std::fs::read_to_string(path).map_err(|e| ConfigError {
        file: file.clone(),
        line: 0,
        reason: e.to_string(),
    })?;
    Ok((file, src))
}

impl Policy {
    /// Reads the `[policy]` table of a TOML file.
    pub fn load(path: &Path) -> Result<Policy, ConfigError> {
        let (file, src) = read(path)?;
        Policy::parse(&file, &src)
    }

    pub fn parse(file: &str, src: &str) -> Result<Policy, ConfigError> {
        let parsed: File = toml::from_str(src).map_err(|e| ConfigError {
            file: file.to_string(),
            line: e
                .span()
                .map(|s| src[..s.start].matches('\n').count() + 1)
                .unwrap_or(1),
            reason: e.message().trim().replace('\n', " "),
        })?;
        let p = parsed.policy;
        let bad = |reason: &str| ConfigError {
            file: file.to_string(),
            line: 0,
            reason: reason.to_string(),
        };
        if p.warnings_allowed == 0 {
            return Err(bad("policy.warnings_allowed: must be at least 1"));
        }
        if p.authority_limit.is_nan() || p.authority_limit < 0.0 {
            return Err(bad(
                "policy.authority_limit: must be a number of at least 0",
            ));
        }
        if !(0.0..=1.0).contains(&p.agitated_at) {
            return Err(bad("policy.agitated_at: must be between 0 and 1"));
        }
        Ok(p)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_and_errors() {
        assert_eq!(Policy::parse("k.toml", "").unwrap(), Policy::default());
        let p = Policy::parse(
            "k.toml",
            "[policy]\nwarnings_allowed = 3\n[server]\nlisten = \"x\"\n",
        )
        .unwrap();
        assert_eq!(p.warnings_allowed, 3);
        let e = Policy::parse("k.toml", "[policy]\nwarnings_alowed = 3\n").unwrap_err();
        assert_eq!(e.line, 2, "{e}");
        assert!(e.reason.contains("warnings_alowed"), "{e}");
        assert!(Policy::parse("k.toml", "[policy]\nwarnings_allowed = 0\n").is_err());
    }
}

#[cfg(test)]
mod example {
    #[test]
    fn the_example_file_holds_the_defaults() {
        let src = include_str!("../../keel.example.toml");
        assert_eq!(
            super::Policy::parse("keel.example.toml", src).unwrap(),
            super::Policy::default()
        );
    }
}
