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

/// The recorded calls (`*.jsonl`) in a folder, sorted by name.
pub fn jsonl_files(dir: &Path) -> std::io::Result<Vec<std::path::PathBuf>> {
    let mut files: Vec<std::path::PathBuf> = std::fs::read_dir(dir)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "jsonl"))
        .collect();
    files.sort();
    Ok(files)
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

/// One fixture message and what the engine answered.
#[derive(Debug, Clone)]
pub struct Step {
    pub input: Inbound,
    pub outputs: Vec<crate::protocol::Outbound>,
    /// The redacted text of a final segment, as the engine saw it.
    pub text: Option<String>,
}

/// Runs a fixture through a coaching session. A fixture without `end` ends as
/// `completed` after its last message, so that every call yields its record.
pub fn coach(lex: &Arc<Lexicon>, policy: &crate::coach::Policy, lines: &[Line]) -> Vec<Step> {
    let call_id = lines
        .iter()
        .find_map(|l| match &l.msg {
            Inbound::Start(s) => Some(s.call_id.clone()),
            _ => None,
        })
        .unwrap_or_else(|| "replay".to_string());
    let mut session = crate::coach::Session::new(Arc::clone(lex), policy.clone(), &call_id);
    let mut steps: Vec<Step> = lines
        .iter()
        .map(|l| {
            let outputs = session.feed(&l.msg);
            let text = match &l.msg {
                Inbound::Transcript(t) if t.is_final => {
                    Some(session.redacted(&t.segment_id, &t.text))
                }
                _ => None,
            };
            Step {
                input: l.msg.clone(),
                outputs,
                text,
            }
        })
        .collect();
    if !session.is_ended() {
        let end = Inbound::End(crate::protocol::End {
            reason: crate::protocol::EndReason::Completed,
        });
        let outputs = session.feed(&end);
        steps.push(Step {
            input: end,
            outputs,
            text: None,
        });
    }
    steps
}

/// The `--format json` output: every coaching message, one JSON object per line.
pub fn format_json(steps: &[Step]) -> String {
    let mut s = String::new();
    for m in steps.iter().flat_map(|st| &st.outputs) {
        s.push_str(&crate::protocol::encode(m));
        s.push('\n');
    }
    s
}

/// The `--format text` output: a QA timeline with the scorecard at the end.
pub fn format_text(steps: &[Step]) -> String {
    use crate::protocol::Outbound as O;
    let mut s = String::new();
    for st in steps {
        match &st.input {
            Inbound::Start(start) => {
                let _ = writeln!(
                    s,
                    "call {}  agent {}",
                    start.call_id,
                    start.agent_id.as_deref().unwrap_or("-")
                );
            }
            Inbound::Transcript(t) if t.is_final => {
                let at = t.end_ms.or(t.start_ms).unwrap_or(0);
                let text = st.text.as_deref().unwrap_or("");
                let _ = writeln!(s, "{}  {:<8}  {}", clock(at), t.speaker.as_str(), text);
            }
            Inbound::Transcript(_) => {}
            Inbound::End(e) => {
                let _ = writeln!(s, "end: {}", e.reason.as_str());
            }
        }
        for m in &st.outputs {
            match m {
                O::Nudge(n) => {
                    let _ = writeln!(
                        s,
                        "          + {} ({}): {}",
                        n.kind.as_str(),
                        n.priority.as_str(),
                        n.text
                    );
                }
                O::NudgeCleared(c) => {
                    let _ = writeln!(
                        s,
                        "          - {} ({}) at {}",
                        c.kind.as_str(),
                        c.reason.as_str(),
                        clock(c.at_ms)
                    );
                }
                O::Boundary(b) => {
                    let _ = writeln!(
                        s,
                        "          # boundary {}: {} abuse incident(s), {}/{} warnings",
                        b.state.as_str(),
                        b.abuse_incidents,
                        b.warnings_given,
                        b.warnings_allowed
                    );
                }
                O::Record(r) => scorecard(&mut s, &r.record),
                _ => {}
            }
        }
    }
    s
}

fn scorecard(s: &mut String, r: &crate::protocol::CallRecord) {
    let a = &r.adherence;
    let yes = |b: bool| if b { "yes" } else { "no" };
    let _ = writeln!(
        s,
        "scorecard  (score {:.2}, lexicon {})",
        a.score, r.lexicon_version
    );
    let _ = writeln!(
        s,
        "  validated {}  apologised specifically {}  open questions {}  summarised {}  asked outcome {}",
        yes(a.validated),
        yes(a.apologized_specifically),
        a.open_questions,
        yes(a.summarized),
        yes(a.asked_desired_outcome)
    );
    let _ = writeln!(
        s,
        "  options {}  timeframe {}  confirmation {}  satisfaction check {}  mirrored {}  affirmations {}",
        a.options_offered,
        yes(a.concrete_timeframe),
        yes(a.confirmation_given),
        yes(a.satisfaction_checked),
        yes(a.mirrored_language),
        a.affirmations
    );
    let cats: Vec<&str> = r.complaint.categories.iter().map(|c| c.as_str()).collect();
    let offered: Vec<&str> = r.resolution.offered.iter().map(|c| c.as_str()).collect();
    let _ = writeln!(
        s,
        "  complaint [{}]  offered [{}]  agreed {}  timeframe {}  confirmation {}",
        cats.join(", "),
        offered.join(", "),
        r.resolution.agreed.map(|k| k.as_str()).unwrap_or("none"),
        r.resolution.timeframe.as_deref().unwrap_or("-"),
        r.resolution.confirmation.as_deref().unwrap_or("-")
    );
    let b = &r.boundary;
    let _ = writeln!(
        s,
        "  boundary {}  incidents {}  warnings {}/{}  terminated {}  compliant {}  escalated {}",
        b.state.as_str(),
        b.abuse_incidents,
        b.warnings_given,
        b.warnings_allowed,
        yes(b.terminated),
        yes(b.compliant),
        yes(r.escalation.escalated)
    );
}

/// Compares a coached fixture with the expectations in its `start.expect`:
/// `raised`, `not_raised`, `boundary`, `abuse_incidents`, `warnings_given`, `complaint`,
/// `agreed`, `escalated`. Returns one line per difference.
pub fn check(steps: &[Step]) -> Vec<String> {
    use crate::protocol::Outbound as O;
    use serde_json::Value;
    let Some(expect) = steps.iter().find_map(|st| match &st.input {
        Inbound::Start(s) => s.expect.clone(),
        _ => None,
    }) else {
        return vec!["no expectations (start.expect) to check".to_string()];
    };
    let raised: std::collections::BTreeSet<&str> = steps
        .iter()
        .flat_map(|st| &st.outputs)
        .filter_map(|m| match m {
            O::Nudge(n) => Some(n.kind.as_str()),
            _ => None,
        })
        .collect();
    let Some(record) = steps
        .iter()
        .flat_map(|st| &st.outputs)
        .find_map(|m| match m {
            O::Record(r) => Some(&r.record),
            _ => None,
        })
    else {
        return vec!["no record produced".to_string()];
    };
    let mut diffs = Vec::new();
    let strs = |v: &Value| -> Vec<String> {
        v.as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|x| x.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default()
    };
    for k in strs(&expect["raised"]) {
        if !raised.contains(k.as_str()) {
            diffs.push(format!("expected {k} to be raised"));
        }
    }
    for k in strs(&expect["not_raised"]) {
        if raised.contains(k.as_str()) {
            diffs.push(format!("expected {k} never to be raised"));
        }
    }
    let b = &record.boundary;
    if let Some(want) = expect["boundary"].as_str() {
        if want != b.state.as_str() {
            diffs.push(format!(
                "boundary: expected {want}, got {}",
                b.state.as_str()
            ));
        }
    }
    for (key, got) in [
        ("abuse_incidents", b.abuse_incidents),
        ("warnings_given", b.warnings_given),
    ] {
        if let Some(want) = expect[key].as_u64() {
            if want != got as u64 {
                diffs.push(format!("{key}: expected {want}, got {got}"));
            }
        }
    }
    let cats: Vec<&str> = record
        .complaint
        .categories
        .iter()
        .map(|c| c.as_str())
        .collect();
    for c in strs(&expect["complaint"]) {
        if !cats.contains(&c.as_str()) {
            diffs.push(format!(
                "complaint: expected {c} among [{}]",
                cats.join(", ")
            ));
        }
    }
    if let Some(want) = expect.get("agreed") {
        let got = record.resolution.agreed.map(|k| k.as_str().to_string());
        if want.as_str().map(str::to_string) != got && !(want.is_null() && got.is_none()) {
            diffs.push(format!(
                "agreed: expected {want}, got {}",
                got.as_deref().unwrap_or("null")
            ));
        }
    }
    if let Some(want) = expect["escalated"].as_bool() {
        if want != record.escalation.escalated {
            diffs.push(format!(
                "escalated: expected {want}, got {}",
                record.escalation.escalated
            ));
        }
    }
    diffs
}
