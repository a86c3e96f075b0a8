//! Table-driven matcher tests, grouped by semantics. Each row: who speaks, what they
//! say (one whole turn), and the hits expected as (category, directed), in order.

use std::sync::Arc;

use keel::matcher::{CallMatcher, Side};

use super::support::{labels, speak, test_lexicon};

type Row = (Side, &'static str, &'static [(&'static str, bool)]);

const C: Side = Side::Customer;
const A: Side = Side::Agent;

fn run(table: &[Row]) {
    let lex = test_lexicon();
    let mut failures = Vec::new();
    for (side, text, want) in table {
        let got = labels(&lex, &speak(&lex, *side, text));
        let want: Vec<(String, bool)> = want.iter().map(|(c, d)| (c.to_string(), *d)).collect();
        if got != want {
            failures.push(format!(
                "{side:?} {text:?}\n   want {want:?}\n    got {got:?}"
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} rows failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn case_and_punctuation() {
    run(&[
        (C, "THIS IS RIDICULOUS", &[("t.frustration", false)]),
        (C, "This. Is. Ridiculous.", &[]),
        (C, "this is ridiculous!!!", &[("t.frustration", false)]),
        (C, "I'm sick, and tired", &[("t.frustration", false)]),
        (C, "this is -- ridiculous", &[("t.frustration", false)]),
        (A, "this is ridiculous", &[]),
    ]);
}

#[test]
fn unicode_and_apostrophes() {
    run(&[
        (
            C,
            "ＴＨＩＳ ＩＳ ＲＩＤＩＣＵＬＯＵＳ",
            &[("t.frustration", false)],
        ),
        (C, "I’m sick and tired", &[("t.frustration", false)]),
        (
            C,
            "I know where you\u{2019}re based… I know where you live",
            &[("t.threat", false)],
        ),
        (C, "“this is ridiculous”", &[("t.frustration", false)]),
        (A, "I’m sorry for the delay", &[("t.apology", false)]),
        (C, "you\u{00A0}idiot", &[("t.insult", true)]),
    ]);
}

#[test]
fn masking_stretching_spelling_leet() {
    run(&[
        (
            C,
            "you f***ing idiot",
            &[("t.profanity", true), ("t.insult", true)],
        ),
        (C, "you a**hole", &[("t.insult", true)]),
        (C, "you're a b*tch", &[("t.insult", true)]),
        (C, "you stuuupid idiooot", &[("t.insult", true)]),
        (C, "f u c k you", &[("t.profanity", true)]),
        (C, "f.u.c.k you", &[("t.profanity", true)]),
        (C, "you 1d10t", &[("t.insult", true)]),
        (C, "you are a sh1t", &[("t.profanity", true)]),
        (C, "you a$$", &[("t.insult", true)]),
        (C, "what the f*** is this", &[("t.profanity", false)]),
    ]);
}

#[test]
fn word_boundaries() {
    run(&[
        (C, "I need an assessment of the damage", &[]),
        (C, "I live in Scunthorpe", &[]),
        (C, "we're joining the class action", &[]),
        (C, "I had a cocktail at the bar", &[]),
        (C, "my therapist said to call", &[]),
        (C, "the grapes arrived rotten", &[]),
        (C, "I read your analysis of it", &[]),
        (C, "we passed the assistant", &[]),
        (C, "please don't shellfish me", &[]),
        (C, "you cocky little", &[]),
        (C, "you ass", &[("t.insult", true)]),
    ]);
}

#[test]
fn negation_reported_speech_idioms() {
    run(&[
        (C, "I will kill you", &[("t.threat", false)]),
        (C, "I'm not going to hurt you", &[]),
        (C, "I would never hurt you", &[]),
        (
            C,
            "I'm not threatening you, I just want to kill you",
            &[("t.threat", false)],
        ),
        (C, "my husband said he'd kill you", &[]),
        (C, "my son told me he'd kill me", &[]),
        (C, "this wait is killing me", &[]),
        (
            C,
            "if this isn't fixed I will kill you",
            &[("t.threat", false)],
        ),
        (C, "I know where you live", &[("t.threat", false)]),
        (C, "I don't know where you live", &[]),
    ]);
}

#[test]
fn directed_versus_situational() {
    run(&[
        (
            C,
            "this damn phone has been broken for a week",
            &[("t.profanity", false)],
        ),
        (C, "damn you", &[("t.profanity", true)]),
        (C, "you're an idiot", &[("t.insult", true)]),
        (C, "you are such an idiot", &[("t.insult", true)]),
        (C, "thanks for nothing, idiot.", &[("t.insult", true)]),
        (C, "thanks for nothing idiot", &[("t.insult", true)]),
        (C, "my idiot brother ordered it", &[("t.insult", false)]),
        (C, "I felt like an idiot", &[("t.insult", false)]),
        (C, "are you fucking kidding me", &[]),
        (C, "you know this is bullshit", &[("t.profanity", false)]),
        (C, "you're damn right", &[]),
        (C, "what the hell is going on", &[]),
        (C, "this is bullshit", &[("t.profanity", false)]),
    ]);
}

#[test]
fn gaps_and_templates() {
    run(&[
        (A, "I'm so sorry for the delay", &[("t.apology", false)]),
        (A, "sorry about all of that for the delay", &[]),
        (
            A,
            "sorry about all this for the delay",
            &[("t.apology", false)],
        ),
        (A, "I'm sorry. For the delay", &[]),
        (
            A,
            "I apologize for all of the inconvenience",
            &[("t.apology", false)],
        ),
        (
            A,
            "you'll have it within 48 hours",
            &[("t.timeframe", false)],
        ),
        (
            A,
            "within three to five business days",
            &[("t.timeframe", false)],
        ),
        (
            A,
            "it should be there by Tuesday",
            &[("t.timeframe", false)],
        ),
        (A, "it will be there soon", &[]),
        (C, "I want my $2,400 back", &[("t.amount", false)]),
        (
            C,
            "two thousand four hundred dollars",
            &[("t.amount", false)],
        ),
        (C, "I've called 3 times", &[]),
        (
            C,
            "this is the third time I'm calling",
            &[("t.frustration", false)],
        ),
    ]);
}

#[test]
fn templates_report_the_longest_match_once() {
    let lex = test_lexicon();
    let hits = speak(&lex, C, "they took $2,400 dollars off me");
    assert_eq!(hits.len(), 1, "{hits:?}");
    assert_eq!(hits[0].text, "$2,400 dollars");
}

fn cats(lex: &keel::lexicon::Lexicon, hits: &[keel::matcher::Hit]) -> Vec<String> {
    labels(lex, hits).into_iter().map(|(c, _)| c).collect()
}

#[test]
fn partial_revision_and_resent_finals() {
    let lex = test_lexicon();
    let mut m = CallMatcher::new(Arc::clone(&lex));
    let u = m.feed("s-1", C, "you're an id", false).unwrap();
    assert!(u.hits.is_empty());
    let u = m.feed("s-1", C, "you're an idiot", false).unwrap();
    assert_eq!(
        cats(&lex, &u.hits),
        ["t.insult"],
        "a partial's hits are tentative but reported"
    );
    let u = m.feed("s-1", C, "you're an ideal customer", true).unwrap();
    assert!(
        u.hits.is_empty() && u.provisional.is_empty(),
        "the final replaces the partial: {u:?}"
    );
    assert!(
        m.feed("s-1", C, "you're an idiot", true).is_none(),
        "a re-sent final changes nothing"
    );
    assert!(
        m.feed("s-1", C, "you're an idiot", false).is_none(),
        "a stale partial changes nothing"
    );
    let rest = m.finish();
    assert!(rest.is_empty(), "{rest:?}");
}

#[test]
fn phrases_span_segments_of_one_turn_but_not_turns() {
    let lex = test_lexicon();
    let mut m = CallMatcher::new(Arc::clone(&lex));
    let mut hits = Vec::new();
    hits.extend(m.feed("s-1", C, "I know where", true).unwrap().hits);
    hits.extend(m.feed("s-2", C, "you live", true).unwrap().hits);
    assert_eq!(cats(&lex, &hits), ["t.threat"]);

    let mut m = CallMatcher::new(Arc::clone(&lex));
    let mut hits = Vec::new();
    hits.extend(m.feed("s-1", C, "I know where", true).unwrap().hits);
    hits.extend(m.feed("s-2", A, "okay", true).unwrap().hits);
    hits.extend(m.feed("s-3", C, "you live", true).unwrap().hits);
    hits.extend(m.finish());
    assert!(cats(&lex, &hits).is_empty(), "{hits:?}");
}

#[test]
fn a_held_hit_is_provisional_until_the_turn_ends() {
    let lex = test_lexicon();
    let mut m = CallMatcher::new(Arc::clone(&lex));
    // "idiot" at the end of a segment may still be followed by more words.
    let u = m.feed("s-1", C, "thanks for nothing idiot", true).unwrap();
    assert!(u.hits.is_empty());
    assert_eq!(
        labels(&lex, &u.provisional),
        [("t.insult".to_string(), true)]
    );
    // The agent's final ends the customer's turn: the vocative is decided.
    let u = m.feed("s-2", A, "I understand", true).unwrap();
    assert_eq!(labels(&lex, &u.hits), [("t.insult".to_string(), true)]);
    assert_eq!(u.hits[0].side, Side::Customer);
}

#[test]
fn card_numbers_never_reach_hits() {
    let lex = test_lexicon();
    let mut m = CallMatcher::new(Arc::clone(&lex));
    let u = m.feed("s-1", C, "it's 4111 1111 1111", false).unwrap();
    assert!(!u.text.contains("4111"), "{}", u.text);
    let u = m
        .feed("s-1", C, "it's 4111 1111 1111 1111 you idiot", true)
        .unwrap();
    assert_eq!(u.text, "it's [PAN] you idiot");
}

#[test]
fn carried_state_stays_small() {
    // Beside the bounded text tail, a stream carries at most 256 bytes.
    assert!(
        keel::matcher::Stream::state_bytes() <= 256,
        "{}",
        keel::matcher::Stream::state_bytes()
    );
}
