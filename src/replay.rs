//! Recorded calls: native JSON Lines fixtures, read with `file:line` errors, and run
//! through the engine offline.

use std::fmt::Write as _;
use std::path::Path;
use std::sync::Arc;

use crate::lexicon::Lexicon;
use crate::matcher::{CallMatcher, Hit, Side};
use crate::protocol::{decode_inbound, Inbound, Role};

/// A fixture that could not be read.
#[derive(Debug, thiserror::Error)]
#[error("{file}:{line}: {reason}")]
pub struct FixtureError {
    pub file: String,
    pub line: usize,
    pub reason: String,
}

/// One decoded fixture line.
#[derive(Debug, Clone)]
pub struct Line {
    pub line: usize,
    pub msg: Inbound,
}

/// Reads a native JSON Lines fixture. Blank lines are skipped; every other line must
/// decode, or the error names the file, the line and the field.
pub fn read_fixture(path: &Path) -> Result<Vec<Line>, FixtureError> {
    let file = path.display().to_string();
    let src = std::fs::read_to_string(path).map_err(|e| FixtureError {
        file: file.clone(),
        line: 0,
        reason: e.to_string(),
    })?;
    parse_fixture(&file, &src)
}

/// Parses fixture text (see [`read_fixture`]).
pub fn parse_fixture(file: &str, src: &str) -> Result<Vec<Line>, FixtureError> {
    let mut out = Vec::new();
    for (i, l) in src.lines().enumerate() {
        if l.trim().is_empty() {
            continue;
        }
        let msg = decode_inbound(l).map_err(|e| FixtureError {
            file: file.to_string(),
            line: i + 1,
            reason: e.to_string(),
        })?;
        out.push(Line { line: i + 1, msg });
    }
    Ok(out)
}

/// The side of a coached speaker.
pub fn side_of(role: Role) -> Option<Side> {
    match role {
        Role::Agent => Some(Side::Agent),
        Role::Customer => Some(Side::Customer),
        _ => None,
    }
}

/// A hit with the call time of the final segment that settled it.
#[derive(Debug, Clone)]
pub struct TimedHit {
    pub at_ms: u64,
    pub hit: Hit,
}

/// Runs a fixture's transcript through a matcher; returns the authoritative hits.
pub fn hits_of(lex: &Arc<Lexicon>, lines: &[Line]) -> Vec<TimedHit> {
    let mut m = CallMatcher::new(Arc::clone(lex));
    let mut out = Vec::new();
    let mut now = 0u64;
    for l in lines {
        match &l.msg {
            Inbound::Transcript(t) => {
                now = now.max(t.end_ms.or(t.start_ms).unwrap_or(now));
                let Some(side) = side_of(t.speaker) else {
                    continue;
                };
                if !t.is_final {
                    continue;
                }
                if let Some(u) = m.feed(&t.segment_id, side, &t.text, true) {
                    out.extend(u.hits.into_iter().map(|hit| TimedHit { at_ms: now, hit }));
                }
            }
            Inbound::End(_) => break,
            Inbound::Start(_) => {}
        }
    }
    out.extend(
        m.finish()
            .into_iter()
            .map(|hit| TimedHit { at_ms: now, hit }),
    );
    out
}

/// Formats call time as `mm:ss.mmm`.
pub fn clock(ms: u64) -> String {
    format!(
        "{:02}:{:02}.{:03}",
        ms / 60_000,
        (ms / 1000) % 60,
        ms % 1000
    )
}

/// The `--format hits` debug view: time, speaker, category, matched text.
pub fn format_hits(lex: &Lexicon, hits: &[TimedHit]) -> String {
    let mut s = String::new();
    for h in hits {
        let c = &lex.categories[h.hit.category as usize];
        let mark = if c.directed {
            if h.hit.directed {
                " directed"
            } else {
                " situational"
            }
        } else {
            ""
        };
        let _ = writeln!(
            s,
            "{}  {:<8}  {}{}  {:?}",
            clock(h.at_ms),
            h.hit.side.as_str(),
            c.id,
            mark,
            h.hit.text
        );
    }
    s
}
