//! Matcher throughput on the recorded-call corpus (fixtures/calls) with the full
//! product lexicon, normalisation and redaction included, against a `regex::RegexSet`
//! of the same entries as the baseline. One core.
//!
//! Run: `cargo bench --bench matcher`

use std::path::PathBuf;
use std::sync::Arc;

use divan::counter::{BytesCount, ItemsCount};
use divan::Bencher;
use keel::lexicon::{template, Lexicon};

/// The allocator of keel's binary (src/main.rs), so that the figures are the product's.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;
use keel::matcher::{CallMatcher, Side, Stream, MAX_TAIL_BYTES};
use keel::protocol::Inbound;
use keel::replay::{read_fixture, side_of};
use regex::{RegexSet, RegexSetBuilder};

struct Corpus {
    calls: Vec<Vec<(Side, String, String)>>,
    bytes: usize,
    segments: usize,
}

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn corpus() -> &'static Corpus {
    static C: std::sync::OnceLock<Corpus> = std::sync::OnceLock::new();
    C.get_or_init(|| {
        let files =
            keel::replay::jsonl_files(&root().join("fixtures/calls")).expect("fixtures/calls");
        let mut calls = Vec::new();
        let (mut bytes, mut segments) = (0, 0);
        for f in files {
            let mut call = Vec::new();
            for l in read_fixture(&f).expect("fixture") {
                if let Inbound::Transcript(t) = l.msg {
                    if let (true, Some(side)) = (t.is_final, side_of(t.speaker)) {
                        bytes += t.text.len();
                        segments += 1;
                        call.push((side, t.segment_id, t.text));
                    }
                }
            }
            calls.push(call);
        }
        Corpus {
            calls,
            bytes,
            segments,
        }
    })
}

fn lexicon() -> &'static Arc<Lexicon> {
    static L: std::sync::OnceLock<Arc<Lexicon>> = std::sync::OnceLock::new();
    L.get_or_init(|| Arc::new(Lexicon::load(&root().join("lexicons")).expect("lexicons")))
}

/// The same entries as one RegexSet: words joined by whitespace, gaps as bounded runs
/// of words, ASCII word boundaries, templates as they expand.
fn baseline() -> &'static RegexSet {
    static S: std::sync::OnceLock<RegexSet> = std::sync::OnceLock::new();
    S.get_or_init(|| {
        let lex = lexicon();
        let mut pats = Vec::new();
        for c in &lex.categories {
            for e in &c.source.entries {
                let text = e.text.to_lowercase().replace('…', "...");
                let mut parts = Vec::new();
                for (i, frag) in text.split("...").enumerate() {
                    let (gap, words) = if i == 0 {
                        (None, frag)
                    } else {
                        let digits: String =
                            frag.chars().take_while(|c| c.is_ascii_digit()).collect();
                        let n = digits.parse().unwrap_or(3);
                        (Some(n), &frag[digits.len()..])
                    };
                    let words: Vec<String> = words.split_whitespace().map(regex::escape).collect();
                    if let Some(n) = gap {
                        parts.push(format!(r"(?:\s+\S+){{0,{n}}}\s+"));
                    }
                    parts.push(words.join(r"\s+"));
                }
                pats.push(format!(r"(?-u:\b){}(?-u:\b)", parts.join("")));
            }
            for t in &c.source.templates {
                pats.push(format!(
                    r"(?-u:\b)(?:{})(?-u:\b)",
                    template::expand(&t.text).expect("template")
                ));
            }
        }
        RegexSetBuilder::new(&pats)
            .size_limit(1 << 30)
            .dfa_size_limit(1 << 30)
            .build()
            .expect("baseline set")
    })
}

#[divan::bench]
fn keel_matcher(b: Bencher) {
    let c = corpus();
    let lex = lexicon();
    b.counter(BytesCount::new(c.bytes))
        .counter(ItemsCount::new(c.segments))
        .bench(|| {
            let mut n = 0usize;
            for call in &c.calls {
                let mut m = CallMatcher::new(Arc::clone(lex));
                for (side, id, text) in call {
                    n += m
                        .feed(id, *side, text, true)
                        .map(|u| u.hits.len())
                        .unwrap_or(0);
                }
                n += m.finish().len();
            }
            divan::black_box(n)
        });
}

#[divan::bench]
fn regexset_baseline(b: Bencher) {
    let c = corpus();
    let set = baseline();
    b.counter(BytesCount::new(c.bytes))
        .counter(ItemsCount::new(c.segments))
        .bench(|| {
            let mut n = 0usize;
            for call in &c.calls {
                for (_, _, text) in call {
                    let lower = text.to_lowercase();
                    n += set.matches(&lower).into_iter().count();
                }
            }
            divan::black_box(n)
        });
}

fn main() {
    let c = corpus();
    let lex = lexicon();
    println!(
        "corpus: {} calls, {} final segments, {} bytes; lexicon: {} categories, {} entries, {} templates, {} automaton patterns, automaton {} KiB, version {}",
        c.calls.len(),
        c.segments,
        c.bytes,
        lex.categories.len(),
        lex.entry_count,
        lex.template_count,
        lex.pattern_count,
        lex.automaton_bytes() / 1024,
        lex.version
    );
    println!(
        "per-stream carried state: {} bytes (StreamState), text tail at most {} bytes beside it; baseline: {} regexes",
        Stream::state_bytes(),
        MAX_TAIL_BYTES,
        baseline().len()
    );
    divan::main();
}
