//! Property: re-chunking a call never changes its final hits. A call (turns of whole
//! sentences) is delivered once as one final segment per turn, and once re-chunked:
//! turns split into several segments at any word, each segment preceded by growing
//! partials cut at any character (some with a wrong last word), finals re-sent.

use std::sync::Arc;

use keel::lexicon::Lexicon;
use keel::matcher::{CallMatcher, Side};
use proptest::prelude::*;

use super::support::{digitish, product_lexicon, Rng};

const POOL: &[&str] = &[
    "this is the third time I'm calling about this and it's ridiculous",
    "you're a useless idiot",
    "thanks for nothing, idiot.",
    "I know where you work",
    "I'm not threatening you, I just want my money back",
    "my son said he'd kill me if I lost it again",
    "this damn phone has been broken for a week",
    "are you f***ing kidding me",
    "f u c k this",
    "you stuuupid b*tch",
    "I want my $2,400 back",
    "refund me two thousand four hundred dollars or get me a manager",
    "I sincerely apologize for the inconvenience this delay has caused you",
    "sorry about that",
    "I'm sorry you feel that way",
    "I understand why you are feeling so frustrated with this outcome",
    "mm-hmm. I see. Right.",
    "can you walk me through what happened when it arrived",
    "if I understand correctly, the wrong model was delivered on Tuesday",
    "what resolution would you like to see for this issue",
    "I can send you a replacement or refund the full amount",
    "you'll have it within 48 hours, your reference number is RMA-55123",
    "it should be there soon",
    "does this solution meet your expectations",
    "is there anything else I can help you with today",
    "I want to help you, but I cannot continue this conversation if you use abusive language",
    "I am ending this call now",
    "let me transfer you to my supervisor",
    "the box was crushed and the screen is cracked",
    "my card number is 4111 1111 1111 1111",
    "the code is 5 5 1 2 3",
    "calm down, that's just our policy",
    "I had an assessment in Scunthorpe about the class action",
    "okay that works for me, sorry for shouting earlier",
];

#[derive(Debug, Clone)]
struct Turn {
    side: Side,
    sentences: Vec<usize>,
}

fn turns() -> impl Strategy<Value = Vec<Turn>> {
    (
        any::<bool>(),
        prop::collection::vec(prop::collection::vec(0..POOL.len(), 1..4), 1..8),
    )
        .prop_map(|(first, ts)| {
            ts.into_iter()
                .enumerate()
                .map(|(i, sentences)| Turn {
                    side: if (i % 2 == 0) == first {
                        Side::Customer
                    } else {
                        Side::Agent
                    },
                    sentences,
                })
                .collect()
        })
}

type Key = (Side, u16, u16, bool, u32, u32, String);

fn keys(hits: Vec<keel::matcher::Hit>) -> Vec<Key> {
    hits.into_iter()
        .map(|h| {
            (
                h.side,
                h.category,
                h.entry,
                h.directed,
                h.start_tok,
                h.end_tok,
                h.text,
            )
        })
        .collect()
}

fn turn_text(t: &Turn) -> String {
    t.sentences
        .iter()
        .map(|&i| POOL[i])
        .collect::<Vec<_>>()
        .join(" ")
}

fn whole(lex: &Arc<Lexicon>, call: &[Turn]) -> Vec<Key> {
    let mut m = CallMatcher::new(Arc::clone(lex));
    let mut hits = Vec::new();
    for (i, t) in call.iter().enumerate() {
        hits.extend(
            m.feed(&format!("w-{i}"), t.side, &turn_text(t), true)
                .unwrap()
                .hits,
        );
    }
    hits.extend(m.finish());
    keys(hits)
}

fn rechunked(lex: &Arc<Lexicon>, call: &[Turn], seed: u64) -> Vec<Key> {
    let mut rng = Rng(seed | 1);
    let mut m = CallMatcher::new(Arc::clone(lex));
    let mut hits = Vec::new();
    let mut seg = 0;
    for t in call {
        let text = turn_text(t);
        let words: Vec<&str> = text.split(' ').collect();
        // Split at word boundaries; a card number or code is not cut in two (a digit
        // run split across segments is a different transcript for the redactor).
        let mut pieces: Vec<String> = Vec::new();
        let mut cur: Vec<&str> = Vec::new();
        for (i, w) in words.iter().enumerate() {
            cur.push(w);
            let next = words.get(i + 1);
            let cut_ok = next.is_some() && !(digitish(w) && next.is_some_and(|n| digitish(n)));
            if cut_ok && rng.chance(3) {
                pieces.push(cur.join(" "));
                cur.clear();
            }
        }
        pieces.push(cur.join(" "));
        for p in pieces {
            seg += 1;
            let id = format!("c-{seg}");
            let partials = rng.below(4);
            for k in 0..partials {
                let mut cut = (p.len() * (k + 1)) / (partials + 1) + rng.below(3);
                cut = cut.min(p.len());
                while !p.is_char_boundary(cut) {
                    cut -= 1;
                }
                let mut hyp = p[..cut].to_string();
                if rng.chance(3) {
                    hyp.push_str(" idiot you");
                }
                let u = m.feed(&id, t.side, &hyp, false).expect("open segment");
                assert!(u.provisional.is_empty());
            }
            hits.extend(m.feed(&id, t.side, &p, true).unwrap().hits);
            if rng.chance(4) {
                assert!(
                    m.feed(&id, t.side, &p, true).is_none(),
                    "a re-sent final is ignored"
                );
            }
        }
    }
    hits.extend(m.finish());
    keys(hits)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1000))]

    #[test]
    fn rechunking_never_changes_final_hits(call in turns(), seed in any::<u64>()) {
        let lex = product_lexicon();
        let a = whole(&lex, &call);
        let b = rechunked(&lex, &call, seed);
        prop_assert_eq!(a, b);
    }
}

#[test]
fn the_pool_exercises_the_matcher() {
    let lex = product_lexicon();
    let call: Vec<Turn> = (0..POOL.len())
        .map(|i| Turn {
            side: if i % 2 == 0 {
                Side::Customer
            } else {
                Side::Agent
            },
            sentences: vec![i],
        })
        .collect();
    let hits = whole(&lex, &call);
    assert!(
        hits.len() >= 20,
        "the pool should produce many hits, got {}",
        hits.len()
    );
    assert!(hits.iter().any(|h| h.3), "some directed hits");
}
