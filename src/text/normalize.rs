//! Streaming text normalisation: raw transcript text in, canonical word tokens out.
//!
//! The matcher never sees raw text. Every segment (and every lexicon entry) goes through
//! [`Normalizer::feed`], which emits lower-case ASCII-ish word tokens and clause breaks to
//! a [`TokenSink`]. The rules are documented for lexicon authors in `lexicons/README.md`:
//! case and Unicode compatibility folding, straight apostrophes, contraction expansion,
//! masked profanity, stretched and spelled-out letters, leetspeak, and punctuation that
//! either ends a clause or only separates words.
//!
//! Normalisation is streaming because two of its rules look across words (a run of
//! single letters "f u c k" and a run of single digits "5 5 1 2 3"): the pending run is
//! carried in [`NormState`], so the output never depends on where a segment was cut.

use std::borrow::Cow;
use std::collections::{HashMap, HashSet};

use serde::{Deserialize, Serialize};
use unicode_normalization::UnicodeNormalization;

/// Receives the normaliser's output.
pub trait TokenSink {
    /// One normalised word.
    fn token(&mut self, tok: &str);
    /// The end of a clause (`.` `!` `?` `;` `:`).
    fn clause_break(&mut self);
}

/// Collects tokens into a string: words separated by one space, clause breaks as `|`.
#[derive(Default, Debug)]
pub struct StringSink(pub String);

impl TokenSink for StringSink {
    fn token(&mut self, tok: &str) {
        if !self.0.is_empty() {
            self.0.push(' ');
        }
        self.0.push_str(tok);
    }
    fn clause_break(&mut self) {
        if !self.0.is_empty() && !self.0.ends_with('|') {
            self.0.push_str(" |");
        }
    }
}

const RUN_CAP: usize = 24;

/// Carried state between chunks of one speaker's stream: a pending run of single
/// letters or single digits (at most 24 bytes).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NormState {
    run: [u8; RUN_CAP],
    run_len: u8,
    /// 0: no run, 1: letters, 2: digits
    run_kind: u8,
}

/// Words that lexicon entries use, so that ambiguous rewrites (masks, stretched letters,
/// leetspeak, spelled-out letters) choose a word that can matter.
#[derive(Debug, Default, Clone)]
pub struct Vocab {
    words: HashSet<String>,
    /// Words a mask may stand for, grouped by length, in lexicon order.
    mask_words: HashMap<usize, Vec<String>>,
}

impl Vocab {
    pub fn new() -> Self {
        Self::default()
    }
    pub fn insert(&mut self, word: &str) {
        self.words.insert(word.to_string());
    }
    /// A word that a masked token ("f***ing") may resolve to.
    pub fn insert_maskable(&mut self, word: &str) {
        if word.chars().all(|c| c.is_ascii_lowercase()) && word.len() >= 2 {
            let list = self.mask_words.entry(word.len()).or_default();
            if !list.iter().any(|w| w == word) {
                list.push(word.to_string());
            }
        }
        self.insert(word);
    }
    pub fn contains(&self, word: &str) -> bool {
        self.words.contains(word)
    }
}

thread_local! {
    /// The token buffer of [`Normalizer::scan`], kept between calls.
    static TOKEN: std::cell::Cell<String> = const { std::cell::Cell::new(String::new()) };
}

/// The normaliser: stateless itself (it holds the vocabulary), state lives in [`NormState`].
#[derive(Debug, Default, Clone)]
pub struct Normalizer {
    vocab: Vocab,
}

fn is_clause_punct(c: char) -> bool {
    matches!(c, '.' | '!' | '?' | ';' | ':' | '…')
}

fn is_token_char(c: char) -> bool {
    c.is_alphanumeric() || matches!(c, '\'' | '*' | '$' | '£' | '€' | '@' | '%')
}

fn fold_char(c: char) -> char {
    match c {
        '\u{2019}' | '\u{2018}' | '\u{02BC}' | '`' | '\u{00B4}' | '\u{2032}' => '\'',
        '\u{201C}' | '\u{201D}' | '\u{201E}' | '\u{00AB}' | '\u{00BB}' => '"',
        '\u{2013}' | '\u{2014}' | '\u{2212}' | '\u{2010}' | '\u{2011}' => '-',
        _ => c,
    }
}

/// Contractions and speech-engine spellings, expanded to their full words.
fn contraction(tok: &str) -> Option<&'static [&'static str]> {
    Some(match tok {
        "i'm" | "im" => &["i", "am"],
        "you're" | "youre" => &["you", "are"],
        "we're" => &["we", "are"],
        "they're" | "theyre" => &["they", "are"],
        "he's" => &["he", "is"],
        "she's" => &["she", "is"],
        "it's" => &["it", "is"],
        "that's" | "thats" => &["that", "is"],
        "what's" | "whats" => &["what", "is"],
        "there's" | "theres" => &["there", "is"],
        "here's" => &["here", "is"],
        "where's" => &["where", "is"],
        "who's" => &["who", "is"],
        "how's" => &["how", "is"],
        "let's" | "lets" => &["let", "us"],
        "i've" | "ive" => &["i", "have"],
        "you've" | "youve" => &["you", "have"],
        "we've" => &["we", "have"],
        "they've" | "theyve" => &["they", "have"],
        "could've" => &["could", "have"],
        "should've" => &["should", "have"],
        "would've" => &["would", "have"],
        "i'll" => &["i", "will"],
        "you'll" | "youll" => &["you", "will"],
        "he'll" => &["he", "will"],
        "she'll" => &["she", "will"],
        "we'll" => &["we", "will"],
        "they'll" | "theyll" => &["they", "will"],
        "it'll" => &["it", "will"],
        "that'll" => &["that", "will"],
        "there'll" => &["there", "will"],
        "i'd" => &["i", "would"],
        "you'd" | "youd" => &["you", "would"],
        "he'd" => &["he", "would"],
        "she'd" => &["she", "would"],
        "we'd" => &["we", "would"],
        "they'd" | "theyd" => &["they", "would"],
        "it'd" => &["it", "would"],
        "that'd" => &["that", "would"],
        "can't" | "cant" | "cannot" => &["can", "not"],
        "won't" => &["will", "not"],
        "don't" | "dont" => &["do", "not"],
        "doesn't" | "doesnt" => &["does", "not"],
        "didn't" | "didnt" => &["did", "not"],
        "isn't" | "isnt" => &["is", "not"],
        "aren't" | "arent" => &["are", "not"],
        "wasn't" | "wasnt" => &["was", "not"],
        "weren't" | "werent" => &["were", "not"],
        "haven't" | "havent" => &["have", "not"],
        "hasn't" | "hasnt" => &["has", "not"],
        "hadn't" | "hadnt" => &["had", "not"],
        "wouldn't" | "wouldnt" => &["would", "not"],
        "shouldn't" | "shouldnt" => &["should", "not"],
        "couldn't" | "couldnt" => &["could", "not"],
        "mustn't" => &["must", "not"],
        "needn't" => &["need", "not"],
        "ain't" | "aint" => &["is", "not"],
        "gonna" => &["going", "to"],
        "wanna" => &["want", "to"],
        "gotta" => &["got", "to"],
        "gimme" => &["give", "me"],
        "lemme" => &["let", "me"],
        "y'all" | "yall" => &["you", "all"],
        "ya'll" => &["you", "all"],
        "ur" => &["your"],
        "u" => &["you"],
        "r" => &["are"],
        "ok" => &["okay"],
        "'cause" | "cuz" | "coz" => &["because"],
        _ => return None,
    })
}

fn leet(c: char) -> Option<char> {
    Some(match c {
        '0' => 'o',
        '1' => 'i',
        '3' => 'e',
        '4' => 'a',
        '5' => 's',
        '7' => 't',
        '@' => 'a',
        '$' => 's',
        '!' => 'i',
        _ => return None,
    })
}

/// Collapses runs of 3+ identical letters to `keep` letters.
fn collapse(tok: &str, keep: usize) -> String {
    let mut out = String::with_capacity(tok.len());
    let mut prev = None;
    let mut count = 0;
    for c in tok.chars() {
        if Some(c) == prev {
            count += 1;
        } else {
            prev = Some(c);
            count = 1;
        }
        if count <= keep {
            out.push(c);
        }
    }
    out
}

fn has_stretch(tok: &str) -> bool {
    let b = tok.as_bytes();
    b.windows(3)
        .any(|w| w[0] == w[1] && w[1] == w[2] && w[0].is_ascii_alphabetic())
}

impl Normalizer {
    pub fn new(vocab: Vocab) -> Self {
        Normalizer { vocab }
    }

    /// Normalises a whole string (a lexicon entry, an example, a test input) and returns
    /// the tokens joined by spaces, clause breaks as `|`.
    pub fn normalize_str(&self, text: &str) -> String {
        let mut st = NormState::default();
        let mut sink = StringSink::default();
        self.feed(&mut st, text, &mut sink);
        self.flush(&mut st, &mut sink);
        sink.0
    }

    /// Feeds one chunk of raw text. Tokens complete at the chunk's end (a chunk is a
    /// whole segment: segments end on word boundaries), except a pending run of single
    /// letters or digits, which stays in `state` until a longer word or [`flush`].
    ///
    /// [`flush`]: Normalizer::flush
    pub fn feed(&self, state: &mut NormState, text: &str, out: &mut impl TokenSink) {
        if text.is_ascii() {
            // Every byte is a character: no UTF-8 decoding.
            self.scan(state, text.bytes().map(char::from), out);
        } else {
            let folded: String = text.nfkc().map(fold_char).collect();
            self.scan(state, folded.chars(), out);
        }
    }

    /// Ends the stream (a turn end): emits any pending run.
    pub fn flush(&self, state: &mut NormState, out: &mut impl TokenSink) {
        self.flush_run(state, out);
    }

    fn scan(
        &self,
        state: &mut NormState,
        chars: impl Iterator<Item = char>,
        out: &mut impl TokenSink,
    ) {
        let mut chars = chars.peekable();
        // This thread's token buffer, given back at the end (a nested scan would find
        // it empty and use a new one).
        let mut tok = TOKEN.take();
        tok.clear();
        let mut prev: Option<char> = None;
        let mut prev2: Option<char> = None;
        while let Some(c) = chars.next() {
            let next = chars.peek().copied();
            if is_token_char(c) {
                if c.is_ascii() {
                    tok.push(c.to_ascii_lowercase());
                } else {
                    tok.extend(c.to_lowercase());
                }
                prev2 = prev;
                prev = Some(c);
                continue;
            }
            let prev_digit = prev.is_some_and(|p| p.is_ascii_digit());
            let next_digit = next.is_some_and(|p| p.is_ascii_digit());
            // Number-internal punctuation: 2,400  49.99  5:30  12/03  555-1234  rma-55123
            let inner = match c {
                ',' | '.' | ':' | '/' => prev_digit && next_digit && !tok.is_empty(),
                '-' => {
                    let prev_alnum = prev.is_some_and(|p| p.is_alphanumeric());
                    let next_alnum = next.is_some_and(|p| p.is_alphanumeric());
                    !tok.is_empty() && ((prev_digit && next_alnum) || (prev_alnum && next_digit))
                }
                _ => false,
            };
            if inner {
                tok.push(c);
                prev2 = prev;
                prev = Some(c);
                continue;
            }
            if !tok.is_empty() {
                self.emit_raw(state, &tok, out);
                tok.clear();
            }
            if is_clause_punct(c) {
                // "f.u.c.k" and "u.s." are letters, not sentence ends.
                let single_letter_dot = c == '.'
                    && prev.is_some_and(|p| p.is_alphabetic())
                    && !prev2.is_some_and(|p| p.is_alphanumeric())
                    && next.is_some_and(|p| p.is_alphabetic());
                if !single_letter_dot {
                    // A run of punctuation is one clause break.
                    while let Some(&n) = chars.peek() {
                        if is_clause_punct(n) || n == '"' {
                            chars.next();
                        } else {
                            break;
                        }
                    }
                    self.flush_run(state, out);
                    out.clause_break();
                }
            }
            prev2 = prev;
            prev = Some(c);
        }
        if !tok.is_empty() {
            self.emit_raw(state, &tok, out);
        }
        TOKEN.set(tok);
    }

    /// One raw token (lower-cased, may hold ' * $ @ digits).
    fn emit_raw(&self, state: &mut NormState, raw: &str, out: &mut impl TokenSink) {
        let raw = raw.trim_matches('\'');
        if raw.is_empty() {
            return;
        }
        let tok = self.rewrite(raw);
        let tok: &str = &tok;
        let b = tok.as_bytes();
        if b.len() == 1 && b[0].is_ascii_lowercase() {
            self.push_run(state, 1, b[0], out);
            return;
        }
        if b.len() == 1 && b[0].is_ascii_digit() {
            self.push_run(state, 2, b[0], out);
            return;
        }
        self.flush_run(state, out);
        emit_expanded(tok, out);
    }

    /// Masks, stretched letters and leetspeak, resolved against the vocabulary.
    fn rewrite<'t>(&self, tok: &'t str) -> Cow<'t, str> {
        // Plain lower-case words (the vast majority) need no rewriting.
        if tok.bytes().all(|b| b.is_ascii_lowercase() || b == b'\'') && !has_stretch(tok) {
            return Cow::Borrowed(tok);
        }
        Cow::Owned(self.rewrite_slow(tok))
    }

    fn rewrite_slow(&self, tok: &str) -> String {
        if tok.contains('*') {
            if tok.chars().all(|c| c == '*') {
                return "***".to_string();
            }
            if let Some(w) = self.unmask(tok) {
                return w.to_string();
            }
            return tok.to_string();
        }
        if self.vocab.contains(tok) || contraction(tok).is_some() {
            return tok.to_string();
        }
        let has_alpha = tok.bytes().any(|b| b.is_ascii_alphabetic());
        if has_alpha && tok.chars().any(|c| leet(c).is_some()) && !tok.starts_with('$') {
            let mapped: String = tok.chars().map(|c| leet(c).unwrap_or(c)).collect();
            if self.vocab.contains(&mapped) {
                return mapped;
            }
            if has_stretch(&mapped) {
                for keep in [2, 1] {
                    let c = collapse(&mapped, keep);
                    if self.vocab.contains(&c) {
                        return c;
                    }
                }
            }
        }
        if has_stretch(tok) {
            let two = collapse(tok, 2);
            if self.vocab.contains(&two) || contraction(&two).is_some() {
                return two;
            }
            let one = collapse(tok, 1);
            if self.vocab.contains(&one) || contraction(&one).is_some() {
                return one;
            }
            return two;
        }
        tok.to_string()
    }

    fn unmask(&self, tok: &str) -> Option<&str> {
        let chars: Vec<char> = tok.chars().collect();
        let list = self.vocab.mask_words.get(&chars.len())?;
        list.iter()
            .find(|w| {
                w.chars()
                    .zip(chars.iter())
                    .all(|(wc, &tc)| tc == '*' || tc == wc || leet(tc) == Some(wc))
            })
            .map(|s| s.as_str())
    }

    fn push_run(&self, state: &mut NormState, kind: u8, byte: u8, out: &mut impl TokenSink) {
        if state.run_kind != kind || state.run_len as usize >= RUN_CAP {
            self.flush_run(state, out);
        }
        state.run_kind = kind;
        state.run[state.run_len as usize] = byte;
        state.run_len += 1;
    }

    fn flush_run(&self, state: &mut NormState, out: &mut impl TokenSink) {
        let len = state.run_len as usize;
        let kind = state.run_kind;
        state.run_len = 0;
        state.run_kind = 0;
        if len == 0 {
            return;
        }
        let run = std::str::from_utf8(&state.run[..len]).unwrap_or("");
        if kind == 2 {
            out.token(run);
            return;
        }
        if len >= 3 {
            if self.vocab.contains(run) {
                out.token(run);
                return;
            }
            let (first, rest) = run.split_at(1);
            if matches!(first, "a" | "i" | "u") && rest.len() >= 3 && self.vocab.contains(rest) {
                emit_expanded(first, out);
                out.token(rest);
                return;
            }
        }
        for i in 0..len {
            emit_expanded(&run[i..i + 1], out);
        }
    }
}

fn emit_expanded(tok: &str, out: &mut impl TokenSink) {
    if let Some(words) = contraction(tok) {
        for w in words {
            out.token(w);
        }
    } else {
        out.token(tok);
    }
}

/// Splits text into the raw lower-case words a vocabulary is built from (contractions
/// expanded, no vocabulary-dependent rewriting).
pub fn plain_words(text: &str) -> Vec<String> {
    let n = Normalizer::default();
    n.normalize_str(text)
        .split(' ')
        .filter(|w| *w != "|" && !w.is_empty())
        .map(str::to_string)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn norm() -> Normalizer {
        let mut v = Vocab::new();
        for w in [
            "fucking", "fuck", "shit", "bitch", "asshole", "stupid", "idiot", "ass", "faggot",
        ] {
            v.insert_maskable(w);
        }
        for w in ["feel", "so", "please", "mm", "hmm"] {
            v.insert(w);
        }
        Normalizer::new(v)
    }

    #[test]
    fn basics() {
        let n = norm();
        assert_eq!(n.normalize_str("I’m SO sorry!"), "i am so sorry |");
        assert_eq!(
            n.normalize_str("you're a f***ing idiot."),
            "you are a fucking idiot |"
        );
        assert_eq!(n.normalize_str("stuuupid"), "stupid");
        assert_eq!(n.normalize_str("f u c k"), "fuck");
        assert_eq!(n.normalize_str("f.u.c.k this"), "fuck this");
        assert_eq!(n.normalize_str("sh1t"), "shit");
        assert_eq!(n.normalize_str("$2,400 and 49.99"), "$2,400 and 49.99");
        assert_eq!(n.normalize_str("5 5 1 2 3"), "55123");
        assert_eq!(n.normalize_str("a**hole"), "asshole");
        assert_eq!(n.normalize_str("f****t"), "faggot");
        assert_eq!(n.normalize_str("****"), "***");
        assert_eq!(n.normalize_str("mm-hmm"), "mm hmm");
        assert_eq!(n.normalize_str("a b i t c h"), "a bitch");
        assert_eq!(n.normalize_str("u r"), "you are");
        assert_eq!(n.normalize_str("ｆｕｃｋ"), "fuck");
    }
}
