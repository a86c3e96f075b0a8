//! Running every category's own examples: `keel lexicon check` and the test suite.
//!
//! Each example is one final segment of the category's speaker (`any` is tested as the
//! customer), followed by the end of the turn.

use super::compile::Category;
use super::load::Lined;
use super::Lexicon;
use crate::lexicon::SpeakerFilter;
use crate::matcher::{Hit, Side, Stream};

/// What a check found.
#[derive(Debug, Default, Clone)]
pub struct CheckReport {
    pub categories: usize,
    pub entries: usize,
    pub templates: usize,
    pub examples: usize,
    /// `file:line: reason`, one per failed example.
    pub failures: Vec<String>,
}

impl CheckReport {
    pub fn ok(&self) -> bool {
        self.failures.is_empty()
    }
}

/// The hits of one text spoken by `side` as a whole turn.
pub fn hits_for(lex: &Lexicon, side: Side, text: &str, cues: bool) -> Vec<Hit> {
    let mut stream = Stream::new(lex, side);
    if cues {
        stream = stream.with_cues();
    }
    let mut hits = Vec::new();
    stream.feed(lex, text, &mut hits);
    stream.flush(lex, &mut hits);
    hits
}

fn side_of(c: &Category) -> Side {
    match c.speaker {
        SpeakerFilter::Agent => Side::Agent,
        SpeakerFilter::Customer | SpeakerFilter::Any => Side::Customer,
    }
}

/// Runs every example of every category.
pub fn check(lex: &Lexicon) -> CheckReport {
    let mut report = CheckReport {
        categories: lex.categories.len(),
        entries: lex.entry_count,
        templates: lex.template_count,
        ..Default::default()
    };
    for (ci, c) in lex.categories.iter().enumerate() {
        let side = side_of(c);
        let modifier = c.kind.is_modifier();
        let run = |ex: &Lined| -> Vec<Hit> {
            hits_for(lex, side, &ex.text, modifier)
                .into_iter()
                .filter(|h| h.category as usize == ci)
                .collect()
        };
        let fail = |ex: &Lined, what: &str| {
            format!(
                "{}:{}: {}: {what}: {:?}",
                c.source.file, ex.line, c.id, ex.text
            )
        };
        let describe = |hits: &[Hit]| -> String {
            hits.iter()
                .map(|h| format!("{:?} (entry {:?})", h.text, c.entry_text(h.entry)))
                .collect::<Vec<_>>()
                .join(", ")
        };
        for ex in &c.source.positive {
            report.examples += 1;
            let hits = run(ex);
            let ok = if c.directed {
                hits.iter().any(|h| h.directed)
            } else {
                !hits.is_empty()
            };
            if !ok {
                let what = if c.directed && !hits.is_empty() {
                    format!(
                        "positive example has only undirected hits {}",
                        describe(&hits)
                    )
                } else {
                    "positive example has no hit".to_string()
                };
                report.failures.push(fail(ex, &what));
            }
        }
        for ex in &c.source.negative {
            report.examples += 1;
            let hits = run(ex);
            let bad: Vec<Hit> = hits
                .into_iter()
                .filter(|h| !c.directed || h.directed)
                .collect();
            if !bad.is_empty() {
                let what = format!("negative example matched {}", describe(&bad));
                report.failures.push(fail(ex, &what));
            }
        }
        for ex in &c.source.situational {
            report.examples += 1;
            let hits = run(ex);
            let directed: Vec<Hit> = hits.iter().filter(|h| h.directed).cloned().collect();
            if !directed.is_empty() {
                report.failures.push(fail(
                    ex,
                    &format!("situational example is directed: {}", describe(&directed)),
                ));
            } else if hits.is_empty() {
                report
                    .failures
                    .push(fail(ex, "situational example has no hit"));
            }
        }
    }
    report
}
