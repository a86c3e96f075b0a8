//! Recorded calls in the formats QA teams already archive, read as native events so that
//! `keel replay` coaches them like any recorded call:
//!
//! - **SegLST** (a JSON list of `{session_id, speaker, words, start_time, end_time}`,
//!   times in seconds): one call per `session_id`.
//! - **NIST STM** (`<file> <channel> <speaker> <begin> <end> [<label>] transcript`, `;;`
//!   comments): one call per `<file>`.
//!
//! Neither format knows who is the agent: a role map (`--roles agent=spk1,customer=spk0`
//! on the command line: role, then speaker names) says it. A speaker the map leaves out
//! is an error naming the speaker and its line, never a silent guess. Segments are
//! ordered by their start time; each becomes one final segment, and every call ends as
//! `completed`.

use std::collections::BTreeMap;

use serde_json::Value;

use crate::adapters::ms;
use crate::protocol::{End, EndReason, Inbound, Role, Start, Transcript};
use crate::replay::{FixtureError, Line};

/// The archive formats.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ArchiveFormat {
    SegLst,
    Stm,
}

/// Which role each speaker name has.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Roles(BTreeMap<String, Role>);

impl Roles {
    /// `agent=spk1,customer=spk0+spk2`: a role, `=`, one or more speakers joined by `+`.
    pub fn parse(s: &str) -> Result<Roles, String> {
        let mut map = BTreeMap::new();
        for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (role, speakers) = part
                .split_once('=')
                .ok_or_else(|| format!("{part:?}: expected role=speaker"))?;
            let role = Role::parse(role.trim()).ok_or_else(|| {
                format!("{role:?} is not a role (agent, customer, supervisor, system, bot)")
            })?;
            for sp in speakers.split('+').map(str::trim).filter(|s| !s.is_empty()) {
                if map.insert(sp.to_string(), role).is_some() {
                    return Err(format!("speaker {sp:?} is given two roles"));
                }
            }
        }
        if map.is_empty() {
            return Err("name at least one speaker".into());
        }
        Ok(Roles(map))
    }

    fn role(&self, file: &str, line: usize, speaker: &str) -> Result<Role, FixtureError> {
        self.0.get(speaker).copied().ok_or_else(|| FixtureError {
            file: file.to_string(),
            line,
            reason: format!(
                "speaker {speaker:?} has no role: add it to --roles (e.g. --roles agent={speaker})"
            ),
        })
    }
}

struct Segment {
    line: usize,
    speaker: Role,
    text: String,
    start_ms: u64,
    end_ms: u64,
}

/// Reads an archive's text into calls: (call id, its native events).
pub fn parse(
    format: ArchiveFormat,
    file: &str,
    src: &str,
    roles: &Roles,
) -> Result<Vec<(String, Vec<Line>)>, FixtureError> {
    let calls = match format {
        ArchiveFormat::SegLst => seglst(file, src, roles)?,
        ArchiveFormat::Stm => stm(file, src, roles)?,
    };
    Ok(calls
        .into_iter()
        .map(|(call_id, mut segs)| {
            segs.sort_by_key(|s| (s.start_ms, s.end_ms, s.line));
            let mut lines = vec![Line {
                line: segs.first().map(|s| s.line).unwrap_or(1),
                msg: Inbound::Start(Start::new(call_id.clone())),
            }];
            for (i, s) in segs.iter().enumerate() {
                lines.push(Line {
                    line: s.line,
                    msg: Inbound::Transcript(Transcript {
                        segment_id: format!("seg-{}", i + 1),
                        speaker: s.speaker,
                        text: s.text.clone(),
                        is_final: true,
                        start_ms: Some(s.start_ms),
                        end_ms: Some(s.end_ms.max(s.start_ms)),
                        seq: None,
                    }),
                });
            }
            lines.push(Line {
                line: segs.last().map(|s| s.line).unwrap_or(1),
                msg: Inbound::End(End {
                    reason: EndReason::Completed,
                }),
            });
            (call_id, lines)
        })
        .collect())
}

fn seglst(
    file: &str,
    src: &str,
    roles: &Roles,
) -> Result<Vec<(String, Vec<Segment>)>, FixtureError> {
    let err = |line: usize, reason: String| FixtureError {
        file: file.to_string(),
        line,
        reason,
    };
    let v: Value =
        serde_json::from_str(src).map_err(|e| err(e.line(), format!("not valid JSON ({e})")))?;
    let list = v
        .as_array()
        .ok_or_else(|| err(1, "expected a JSON list of segments".into()))?;
    // The line each segment starts on, for errors: the n-th `{` at nesting depth 1.
    let lines = object_lines(src);
    let mut calls: Vec<(String, Vec<Segment>)> = Vec::new();
    for (i, seg) in list.iter().enumerate() {
        let line = lines.get(i).copied().unwrap_or(1);
        let field = |name: &str| {
            seg.get(name)
                .ok_or_else(|| err(line, format!("[{i}].{name}: missing required field")))
        };
        let text = |name: &str| -> Result<String, FixtureError> {
            match field(name)? {
                Value::String(s) => Ok(s.clone()),
                Value::Number(n) => Ok(n.to_string()),
                _ => Err(err(line, format!("[{i}].{name}: expected a string"))),
            }
        };
        let secs = |name: &str| -> Result<f64, FixtureError> {
            let f = field(name)?;
            f.as_f64()
                .or_else(|| f.as_str().and_then(|s| s.parse().ok()))
                .ok_or_else(|| err(line, format!("[{i}].{name}: expected seconds")))
        };
        let session = text("session_id")?;
        let speaker = roles.role(file, line, &text("speaker")?)?;
        let segment = Segment {
            line,
            speaker,
            text: text("words")?,
            start_ms: ms(secs("start_time")?),
            end_ms: ms(secs("end_time")?),
        };
        match calls.iter_mut().find(|c| c.0 == session) {
            Some(c) => c.1.push(segment),
            None => calls.push((session, vec![segment])),
        }
    }
    Ok(calls)
}

/// The 1-based line on which each top-level object of a JSON list begins.
fn object_lines(src: &str) -> Vec<usize> {
    let (mut depth, mut line, mut in_str, mut escaped) = (0usize, 1usize, false, false);
    let mut out = Vec::new();
    for c in src.chars() {
        if c == '\n' {
            line += 1;
        }
        if in_str {
            match (escaped, c) {
                (true, _) => escaped = false,
                (false, '\\') => escaped = true,
                (false, '"') => in_str = false,
                _ => {}
            }
            continue;
        }
        match c {
            '"' => in_str = true,
            '[' | '{' => {
                if c == '{' && depth == 1 {
                    out.push(line);
                }
                depth += 1;
            }
            ']' | '}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    out
}

fn stm(file: &str, src: &str, roles: &Roles) -> Result<Vec<(String, Vec<Segment>)>, FixtureError> {
    let mut calls: Vec<(String, Vec<Segment>)> = Vec::new();
    for (i, raw) in src.lines().enumerate() {
        let line = i + 1;
        let l = raw.trim();
        if l.is_empty() || l.starts_with(";;") {
            continue;
        }
        let err = |reason: String| FixtureError {
            file: file.to_string(),
            line,
            reason,
        };
        let mut parts = l.split_whitespace();
        let mut next = |name: &str| {
            parts
                .next()
                .ok_or_else(|| err(format!("missing {name} (<file> <channel> <speaker> <begin> <end> [<label>] transcript)")))
        };
        let call = next("file")?.to_string();
        let _channel = next("channel")?;
        let speaker = next("speaker")?.to_string();
        let begin: f64 = next("begin")?
            .parse()
            .map_err(|_| err("begin: expected seconds".into()))?;
        let end: f64 = next("end")?
            .parse()
            .map_err(|_| err("end: expected seconds".into()))?;
        // The rest: an optional <label>, then the transcript.
        let rest = l.split_whitespace().skip(5).collect::<Vec<_>>().join(" ");
        let text = match rest.strip_prefix('<') {
            Some(r) => r
                .split_once('>')
                .map(|(_, t)| t.trim())
                .unwrap_or("")
                .to_string(),
            None => rest,
        };
        // Unscored or silent stretches are no speech.
        if text.is_empty() || text.eq_ignore_ascii_case("ignore_time_segment_in_scoring") {
            continue;
        }
        let speaker = roles.role(file, line, &speaker)?;
        let segment = Segment {
            line,
            speaker,
            text,
            start_ms: ms(begin),
            end_ms: ms(end),
        };
        match calls.iter_mut().find(|c| c.0 == call) {
            Some(c) => c.1.push(segment),
            None => calls.push((call, vec![segment])),
        }
    }
    Ok(calls)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn texts(lines: &[Line]) -> Vec<(Role, String, u64)> {
        lines
            .iter()
            .filter_map(|l| match &l.msg {
                Inbound::Transcript(t) => Some((t.speaker, t.text.clone(), t.start_ms.unwrap())),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn seglst_sessions_become_calls_in_time_order() {
        let src = r#"[
  {"session_id": "call-7", "speaker": "spk1", "words": "thanks for calling", "start_time": 0.5, "end_time": 1.9},
  {"session_id": "call-7", "speaker": "spk0", "words": "this is the third time", "start_time": 0.2, "end_time": 0.4},
  {"session_id": "call-8", "speaker": "spk0", "words": "hello", "start_time": 1, "end_time": 2}
]"#;
        let roles = Roles::parse("agent=spk1,customer=spk0").unwrap();
        let calls = parse(ArchiveFormat::SegLst, "a.json", src, &roles).unwrap();
        assert_eq!(calls.len(), 2);
        assert_eq!(calls[0].0, "call-7");
        assert_eq!(
            texts(&calls[0].1),
            vec![
                (Role::Customer, "this is the third time".into(), 200),
                (Role::Agent, "thanks for calling".into(), 500)
            ]
        );
        assert!(matches!(calls[0].1.last().unwrap().msg, Inbound::End(_)));
        let e = parse(
            ArchiveFormat::SegLst,
            "a.json",
            src,
            &Roles::parse("agent=spk1").unwrap(),
        )
        .unwrap_err();
        assert_eq!(e.line, 3, "{e}");
        assert!(e.to_string().contains("spk0"), "{e}");
        let e = parse(
            ArchiveFormat::SegLst,
            "b.json",
            "[\n{\"session_id\":\"x\",\"speaker\":\"spk1\",\"start_time\":1,\"end_time\":2}\n]",
            &roles,
        )
        .unwrap_err();
        assert!(e.to_string().contains("[0].words"), "{e}");
        assert_eq!(e.line, 2);
    }

    #[test]
    fn stm_files_become_calls() {
        let src = ";; a comment\ncall-9 A agent_1 0.00 2.50 <o,f0,female> thank you for calling\ncall-9 B cust 2.80 4.10 i want a refund\ncall-9 B cust 4.20 4.90 ignore_time_segment_in_scoring\n";
        let roles = Roles::parse("agent=agent_1,customer=cust").unwrap();
        let calls = parse(ArchiveFormat::Stm, "c.stm", src, &roles).unwrap();
        assert_eq!(
            texts(&calls[0].1),
            vec![
                (Role::Agent, "thank you for calling".into(), 0),
                (Role::Customer, "i want a refund".into(), 2800)
            ]
        );
        let e = parse(
            ArchiveFormat::Stm,
            "c.stm",
            "call-9 A agent_1 zero 2.5 hi\n",
            &roles,
        )
        .unwrap_err();
        assert_eq!((e.line, e.reason.as_str()), (1, "begin: expected seconds"));
        assert!(Roles::parse("boss=spk1").unwrap_err().contains("boss"));
        assert!(Roles::parse("agent=a,customer=a")
            .unwrap_err()
            .contains("two roles"));
    }
}
