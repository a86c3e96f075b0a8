//! The coaching engine over the recorded calls: expectations, golden outputs,
//! determinism, chunking invariance, and the partial/final rules.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use keel::coach::{Policy, Session};
use keel::protocol::*;
use keel::replay::{self, Line};
use serde_json::Value;

use super::support::{digitish, fixtures, product_lexicon, root, Rng};

fn run(lines: &[Line]) -> Vec<replay::Step> {
    replay::coach(&product_lexicon(), &Policy::default(), lines)
}

#[test]
fn every_fixture_meets_its_expectations() {
    let files = fixtures();
    assert!(files.len() >= 10, "only {} fixtures", files.len());
    let mut failures = Vec::new();
    for f in &files {
        let lines = replay::read_fixture(f).unwrap();
        for d in replay::check(&run(&lines)) {
            failures.push(format!("{}: {d}", f.display()));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

fn golden_path(fixture: &Path) -> PathBuf {
    root()
        .join("fixtures/golden")
        .join(fixture.file_name().unwrap())
}

#[test]
fn json_output_matches_the_golden_files() {
    let bless = std::env::var_os("KEEL_BLESS").is_some();
    let mut stale = Vec::new();
    for f in fixtures() {
        let out = replay::format_json(&run(&replay::read_fixture(&f).unwrap()));
        let golden = golden_path(&f);
        if bless {
            std::fs::create_dir_all(golden.parent().unwrap()).unwrap();
            std::fs::write(&golden, &out).unwrap();
            continue;
        }
        match std::fs::read_to_string(&golden) {
            Ok(want) if want == out => {}
            Ok(want) => {
                let line = want
                    .lines()
                    .zip(out.lines())
                    .position(|(a, b)| a != b)
                    .unwrap_or(0)
                    + 1;
                stale.push(format!("{}: differs from line {line}", golden.display()));
            }
            Err(_) => stale.push(format!("{}: missing", golden.display())),
        }
    }
    assert!(
        stale.is_empty(),
        "golden outputs differ (review, then rerun with KEEL_BLESS=1 to accept):\n{}",
        stale.join("\n")
    );
}

#[test]
fn replay_is_deterministic() {
    for f in fixtures() {
        let lines = replay::read_fixture(&f).unwrap();
        let a = replay::format_json(&run(&lines));
        let b = replay::format_json(&run(&lines));
        assert_eq!(a, b, "{}", f.display());
        assert!(
            a.lines()
                .last()
                .unwrap()
                .starts_with("{\"type\":\"record\""),
            "the record comes last"
        );
    }
}

/// Kinds raised and not withdrawn as contradicted.
fn kept_kinds(steps: &[replay::Step]) -> Vec<NudgeKind> {
    let msgs: Vec<&Outbound> = steps.iter().flat_map(|s| &s.outputs).collect();
    let retracted: Vec<&str> = msgs
        .iter()
        .filter_map(|m| match m {
            Outbound::NudgeCleared(c) if c.reason == ClearReason::Retracted => Some(c.id.as_str()),
            _ => None,
        })
        .collect();
    let mut kinds: Vec<NudgeKind> = msgs
        .iter()
        .filter_map(|m| match m {
            Outbound::Nudge(n) if !retracted.contains(&n.id.as_str()) => Some(n.kind),
            _ => None,
        })
        .collect();
    kinds.sort();
    kinds.dedup();
    kinds
}

/// The record without what depends on segment boundaries: nudge times and ids, and the
/// evidence quotes (which quote a whole segment).
fn comparable_record(steps: &[replay::Step]) -> Value {
    let rec = steps
        .iter()
        .flat_map(|s| &s.outputs)
        .find_map(|m| match m {
            Outbound::Record(r) => Some(r.record.clone()),
            _ => None,
        })
        .expect("a record");
    let mut v = serde_json::to_value(rec).unwrap();
    v.as_object_mut().unwrap().remove("nudges");
    for e in v["complaint"]["evidence"].as_array_mut().unwrap() {
        e.as_object_mut().unwrap().retain(|k, _| k == "category");
    }
    v
}

/// Each final segment split at words into up to three segments with proportional
/// times, each preceded by growing partials; the fixture's own partials dropped.
fn rechunk(lines: &[Line], seed: u64) -> Vec<Line> {
    let mut rng = Rng(seed | 1);
    let mut out = Vec::new();
    for l in lines {
        let Inbound::Transcript(t) = &l.msg else {
            out.push(l.clone());
            continue;
        };
        if !t.is_final {
            continue;
        }
        let words: Vec<&str> = t.text.split(' ').collect();
        let mut cuts = Vec::new();
        for i in 1..words.len() {
            if !digitish(words[i - 1])
                && !digitish(words[i])
                && rng.next() % 5 == 0
                && cuts.len() < 2
            {
                cuts.push(i);
            }
        }
        cuts.push(words.len());
        let (s0, e0) = (t.start_ms.unwrap_or(0), t.end_ms.unwrap_or(0));
        let total = t.text.len().max(1) as u64;
        let mut from = 0;
        let mut offset = 0u64;
        for (k, &to) in cuts.iter().enumerate() {
            let piece = words[from..to].join(" ");
            let start = s0 + (e0 - s0) * offset / total;
            offset += piece.len() as u64 + 1;
            let end = if k + 1 == cuts.len() {
                e0
            } else {
                s0 + (e0 - s0) * offset.min(total) / total
            };
            let id = format!("{}.{k}", t.segment_id);
            for p in 0..(rng.next() % 3) {
                let mut cut = (piece.len() * (p as usize + 1)) / 3;
                while !piece.is_char_boundary(cut) {
                    cut -= 1;
                }
                out.push(Line {
                    line: l.line,
                    msg: Inbound::Transcript(Transcript {
                        segment_id: id.clone(),
                        speaker: t.speaker,
                        text: piece[..cut].to_string(),
                        is_final: false,
                        start_ms: Some(start),
                        end_ms: Some(start + (end - start) * (p + 1) / 3),
                        seq: None,
                    }),
                });
            }
            let fin = Inbound::Transcript(Transcript {
                segment_id: id,
                speaker: t.speaker,
                text: piece,
                is_final: true,
                start_ms: Some(start),
                end_ms: Some(end),
                seq: None,
            });
            out.push(Line {
                line: l.line,
                msg: fin.clone(),
            });
            if rng.next() % 4 == 0 {
                out.push(Line {
                    line: l.line,
                    msg: fin,
                });
            }
            from = to;
        }
    }
    out
}

#[test]
fn rechunking_a_call_keeps_its_kinds_boundary_and_record() {
    for f in fixtures() {
        let lines = replay::read_fixture(&f).unwrap();
        let whole = run(&lines);
        for seed in [1u64, 7, 42, 1234] {
            let other = run(&rechunk(&lines, seed));
            assert_eq!(
                kept_kinds(&whole),
                kept_kinds(&other),
                "{} seed {seed}: raised kinds",
                f.display()
            );
            assert_eq!(
                comparable_record(&whole),
                comparable_record(&other),
                "{} seed {seed}: record",
                f.display()
            );
        }
    }
}

fn transcript(id: &str, speaker: Role, text: &str, fin: bool, start: u64, end: u64) -> Inbound {
    Inbound::Transcript(Transcript {
        segment_id: id.into(),
        speaker,
        text: text.into(),
        is_final: fin,
        start_ms: Some(start),
        end_ms: Some(end),
        seq: None,
    })
}

fn session() -> Session {
    Session::new(Arc::clone(&product_lexicon()), Policy::default(), "c-test")
}

#[test]
fn a_partial_raises_early_and_its_final_confirms_or_retracts() {
    let mut s = session();
    let out = s.feed(&transcript(
        "s-1",
        Role::Customer,
        "you are a useless idiot",
        false,
        0,
        1500,
    ));
    assert!(
        matches!(&out[..], [Outbound::Nudge(n)] if n.kind == NudgeKind::FirstBoundaryWarningDue),
        "{out:?}"
    );
    let out = s.feed(&transcript(
        "s-1",
        Role::Customer,
        "you are a useless idiot",
        true,
        0,
        1800,
    ));
    assert!(
        !out.iter().any(|m| matches!(m, Outbound::Nudge(_))),
        "not raised twice: {out:?}"
    );
    assert!(out
        .iter()
        .any(|m| matches!(m, Outbound::Boundary(b) if b.state == BoundaryState::FirstWarningDue)));
    assert!(s
        .feed(&transcript(
            "s-1",
            Role::Customer,
            "you are a useless idiot",
            true,
            0,
            1800
        ))
        .is_empty());

    let mut s = session();
    s.feed(&transcript(
        "s-1",
        Role::Customer,
        "you idiot",
        false,
        0,
        800,
    ));
    let out = s.feed(&transcript(
        "s-1",
        Role::Customer,
        "you did it, thank you",
        true,
        0,
        2000,
    ));
    assert!(
        out.iter().any(
            |m| matches!(m, Outbound::NudgeCleared(c) if c.reason == ClearReason::Retracted
            && c.kind == NudgeKind::FirstBoundaryWarningDue)
        ),
        "{out:?}"
    );
    assert!(
        !out.iter().any(|m| matches!(m, Outbound::Boundary(_))),
        "no abuse counted: {out:?}"
    );
}

#[test]
fn abuse_counts_per_turn_and_warnings_only_while_due() {
    let mut s = session();
    let mut all = Vec::new();
    all.extend(s.feed(&transcript(
        "s-1",
        Role::Customer,
        "you idiot.",
        true,
        0,
        1000,
    )));
    all.extend(s.feed(&transcript(
        "s-2",
        Role::Customer,
        "you useless moron.",
        true,
        1000,
        2000,
    )));
    all.extend(s.feed(&transcript(
        "s-3",
        Role::Agent,
        "I need you to keep this conversation respectful.",
        true,
        2500,
        4000,
    )));
    all.extend(s.feed(&transcript(
        "s-4",
        Role::Agent,
        "This conversation needs to remain respectful.",
        true,
        4000,
        5000,
    )));
    all.extend(s.feed(&Inbound::End(End {
        reason: EndReason::CustomerHangup,
    })));
    let Some(Outbound::Record(r)) = all.last() else {
        panic!("{all:?}")
    };
    let b = &r.record.boundary;
    assert_eq!(
        (b.abuse_incidents, b.warnings_given, b.state),
        (1, 1, BoundaryState::WarnedOnce),
        "{all:?}"
    );
}

#[test]
fn a_cleared_kind_respects_its_cooldown() {
    let mut s = session();
    let mut kinds = Vec::new();
    let mut feed = |m: Inbound| {
        for o in s.feed(&m) {
            if let Outbound::Nudge(n) = o {
                kinds.push((n.kind, n.at_ms));
            }
        }
    };
    feed(transcript(
        "s-1",
        Role::Customer,
        "this is ridiculous",
        true,
        0,
        1000,
    ));
    feed(transcript(
        "s-2",
        Role::Agent,
        "I completely understand how frustrating that is",
        true,
        1500,
        3000,
    ));
    feed(transcript(
        "s-3",
        Role::Customer,
        "this is ridiculous",
        true,
        4000,
        5000,
    ));
    feed(transcript("s-4", Role::Agent, "okay", true, 5500, 6000));
    feed(transcript(
        "s-5",
        Role::Customer,
        "this is absolutely ridiculous",
        true,
        40_000,
        41_000,
    ));
    let vf: Vec<u64> = kinds
        .iter()
        .filter(|(k, _)| *k == NudgeKind::ValidateFeelings)
        .map(|(_, t)| *t)
        .collect();
    assert_eq!(
        vf,
        vec![1000, 41_000],
        "raised, cleared, not again within 30 s, then again"
    );
}

#[test]
fn a_saved_session_resumes_where_it_stood() {
    let lex = product_lexicon();
    for f in fixtures() {
        let lines = replay::read_fixture(&f).unwrap();
        let mut whole = Session::new(Arc::clone(&lex), Policy::default(), "c");
        let want: Vec<Outbound> = lines.iter().flat_map(|l| whole.feed(&l.msg)).collect();

        let mid = lines.len() / 2;
        let mut first = Session::new(Arc::clone(&lex), Policy::default(), "c");
        let mut got: Vec<Outbound> = lines[..mid]
            .iter()
            .flat_map(|l| first.feed(&l.msg))
            .collect();
        let saved = first.save();
        drop(first);
        let mut second = Session::restore(&saved, Arc::clone(&lex)).unwrap();
        got.extend(lines[mid..].iter().flat_map(|l| second.feed(&l.msg)));
        assert_eq!(got, want, "{}", f.display());
    }
    let s = Session::new(Arc::clone(&lex), Policy::default(), "c").save();
    let other = keel::lexicon::compile::empty_lexicon();
    assert!(
        Session::restore(&s, other).is_err(),
        "a session restores only with its own lexicon"
    );
}

#[test]
fn the_recorded_calls_raise_and_clear_every_nudge_kind() {
    let mut raised = std::collections::BTreeSet::new();
    let mut satisfied = std::collections::BTreeSet::new();
    let mut cleared = std::collections::BTreeSet::new();
    for f in fixtures() {
        for m in run(&replay::read_fixture(&f).unwrap())
            .iter()
            .flat_map(|s| &s.outputs)
        {
            match m {
                Outbound::Nudge(n) => {
                    raised.insert(n.kind);
                }
                Outbound::NudgeCleared(c) => {
                    cleared.insert(c.kind);
                    if c.reason == ClearReason::Satisfied {
                        satisfied.insert(c.kind);
                    }
                }
                _ => {}
            }
        }
    }
    for &k in NudgeKind::ALL {
        assert!(
            raised.contains(&k),
            "no recorded call raises {}",
            k.as_str()
        );
        assert!(
            cleared.contains(&k),
            "no recorded call clears {}",
            k.as_str()
        );
    }
    use NudgeKind::*;
    for k in [
        StayComposed,
        SlowDown,
        LetThemVent,
        ValidateFeelings,
        ApologizeSpecifically,
        AskOpenQuestions,
        SummarizeBack,
        AskDesiredOutcome,
        GiveTimeframe,
        FirstBoundaryWarningDue,
        SecondBoundaryWarningDue,
        EscalateToSupervisor,
    ] {
        assert!(
            satisfied.contains(&k),
            "no recorded call shows the agent satisfying {}",
            k.as_str()
        );
    }
}
