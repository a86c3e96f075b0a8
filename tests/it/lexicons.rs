//! The product lexicon set: it loads, every example it carries passes, every category
//! has enough examples, and the hard cases of the product contract hold.

use keel::lexicon::check::check;
use keel::lexicon::Kind;
use keel::matcher::Side;

use super::support::{product_lexicon, speak};

#[test]
fn every_example_passes() {
    let lex = product_lexicon();
    let report = check(&lex);
    assert!(
        report.ok(),
        "{} examples failed:\n{}",
        report.failures.len(),
        report.failures.join("\n")
    );
    assert!(report.examples >= 500, "only {} examples", report.examples);
}

#[test]
fn every_category_has_five_positive_and_five_negative_examples() {
    let lex = product_lexicon();
    let thin: Vec<String> = lex
        .categories
        .iter()
        .filter(|c| c.source.positive.len() < 5 || c.source.negative.len() < 5)
        .map(|c| {
            format!(
                "{} ({} positive, {} negative)",
                c.id,
                c.source.positive.len(),
                c.source.negative.len()
            )
        })
        .collect();
    assert!(
        thin.is_empty(),
        "categories with too few examples: {thin:?}"
    );
    let directed_without_situational: Vec<&str> = lex
        .categories
        .iter()
        .filter(|c| c.directed && c.source.situational.len() < 5)
        .map(|c| c.id.as_str())
        .collect();
    assert!(
        directed_without_situational.is_empty(),
        "{directed_without_situational:?}"
    );
}

#[test]
fn the_coaching_model_is_covered() {
    let lex = product_lexicon();
    assert!(lex.entry_count >= 600, "only {} entries", lex.entry_count);
    let needed = [
        Kind::Frustration,
        Kind::Profanity,
        Kind::Insult,
        Kind::DirectedAbuse,
        Kind::Threat,
        Kind::HateSpeech,
        Kind::SupervisorRequest,
        Kind::RefundDemand,
        Kind::CustomerApology,
        Kind::RemedyAcceptance,
        Kind::Validation,
        Kind::Affirmation,
        Kind::ApologySpecific,
        Kind::ApologyGeneric,
        Kind::NonApology,
        Kind::BlanketFault,
        Kind::Defensive,
        Kind::OpenQuestion,
        Kind::Summary,
        Kind::DesiredOutcome,
        Kind::VaguePromise,
        Kind::Timeframe,
        Kind::CompletedStep,
        Kind::ConfirmationNumber,
        Kind::SatisfactionCheck,
        Kind::Closing,
        Kind::EndCall,
        Kind::Transfer,
        Kind::Amount,
        Kind::Technical,
    ];
    for k in needed {
        assert!(
            lex.categories.iter().any(|c| c.kind == k),
            "no category of kind {}",
            k.as_str()
        );
    }
    for tag in keel::lexicon::ROOT_CAUSES
        .iter()
        .chain(keel::lexicon::REMEDY_KINDS)
        .chain(&["first", "second"])
    {
        assert!(
            lex.categories.iter().any(|c| c.tag.as_deref() == Some(tag)),
            "no category tagged {tag}"
        );
    }
}

fn abuse(text: &str) -> Vec<String> {
    let lex = product_lexicon();
    speak(&lex, Side::Customer, text)
        .into_iter()
        .filter(|h| {
            let c = &lex.categories[h.category as usize];
            c.kind.is_abuse() && (!c.directed || h.directed)
        })
        .map(|h| format!("{} {:?}", lex.categories[h.category as usize].id, h.text))
        .collect()
}

#[test]
fn substring_traps_never_match_abuse() {
    for text in [
        "I need an assessment of the damage",
        "I'm calling from Scunthorpe",
        "we are part of the class action",
        "the cocktail glasses arrived broken",
        "my therapist told me to call",
        "the grapes were rotten",
        "the analysis on your website is wrong",
        "I passed it to my assistant",
        "the shellfish order was wrong",
        "we're in Essex, near Middlesex",
        "I had to pass the bass guitar back",
        "my cockatoo chewed the cable",
        "I was hoping to speak to Dick in accounts",
        "the title says Hancock",
        "I'll be there at half past",
    ] {
        assert!(abuse(text).is_empty(), "{text:?} -> {:?}", abuse(text));
    }
}

#[test]
fn frustration_is_not_abuse_and_abuse_is() {
    for text in [
        "this damn phone has been broken for a week",
        "this is ridiculous",
        "what the hell is going on with my account",
        "this is bullshit, I've been waiting three weeks",
        "I'm not threatening you, I just want my money back",
        "my son said he'd kill me if I lost it again",
        "this wait is killing me",
        "are you f***ing kidding me",
    ] {
        assert!(abuse(text).is_empty(), "{text:?} -> {:?}", abuse(text));
    }
    for text in [
        "you're a useless idiot",
        "I know where you work",
        "f*** you",
        "you stupid b*tch",
        "listen to me you moron",
        "I'm going to come down there and hurt you",
    ] {
        assert!(!abuse(text).is_empty(), "{text:?} should be abuse");
    }
}
