//! PCI redaction, applied to every transcript text (partials included) before anything
//! else sees it: matching, evidence quotes, logs, records.
//!
//! - A Luhn-valid run of 13–19 digits becomes `[PAN]`. Digits may be grouped with
//!   spaces, dashes, commas or dots, and may be spoken as words ("four one one one",
//!   "oh", "double four", "triple one"), as speech engines print them.
//! - A run of digits that reaches the end of a text and could be the start of a card
//!   number is redacted as `[PAN]` even before it is complete — 12–19 digits at the end
//!   of a partial hypothesis, 12–15 at the end of a final segment: the next word, or the
//!   speaker's next segment, may complete it.
//! - A card number read across two segments of the same speaker is recognised as one:
//!   the digits that ended the speaker's last final segment are carried
//!   ([`RedactState`]), and the digits that open the next segment are redacted when the
//!   two together hold a Luhn-valid 13–19 digit run.
//! - After a request for the card security code ("security code", "CVV", "the three digit
//!   code on the back"), the next 3–4 digit number the customer gives becomes `[CVV]`.
//!   The request arms [`RedactState`] until the customer's second turn after it ends
//!   (counted in turns, not segments, so that chunking never changes the result).

use std::borrow::Cow;
use std::sync::OnceLock;

use regex::Regex;
use serde::{Deserialize, Serialize};

/// Carried redaction state of one call.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RedactState {
    /// Customer turns during which a security code is still expected.
    pub cvv_armed: u8,
    /// The digits that ended each speaker's last final segment (customer, others).
    #[serde(default)]
    pub tails: [Tail; 2],
}

/// The digit run a final segment ended with (at most 18 digits: a 19th would have
/// completed any card number within the segment).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tail {
    len: u8,
    digits: [u8; 18],
}

impl Tail {
    fn digits(&self) -> &[u8] {
        &self.digits[..self.len as usize]
    }

    fn set(&mut self, digits: &[u8]) {
        let keep = &digits[digits.len().saturating_sub(18)..];
        self.digits[..keep.len()].copy_from_slice(keep);
        self.len = keep.len() as u8;
    }
}

impl RedactState {
    /// A customer turn ended (the agent's final segment followed it).
    pub fn end_customer_turn(&mut self) {
        self.cvv_armed = self.cvv_armed.saturating_sub(1);
    }
}

/// Who spoke the text being redacted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    Customer,
    Other,
}

const CVV_WINDOW: u8 = 2;

fn cvv_request() -> &'static Regex {
    static RE: OnceLock<Regex> = OnceLock::new();
    RE.get_or_init(|| {
        Regex::new(
            r"(?i-u)\b(security code|security number|cvv2?|cvc2?|cid|card verification|verification (code|number|value)|(three|four|3|4)[- ]digit (code|number)|code on the back|number on the back|digits on the back)\b",
        )
        .expect("static regex")
    })
}

/// What one cheap pass over a text finds: the longest run of adjacent digit-bearing
/// words (counted in digits; at least as long as any run [`digit_runs`] will find), and
/// whether a word that a security-code request needs is there.
struct Scan {
    longest_run: usize,
    request_word: bool,
}

fn scan(text: &str) -> Scan {
    let mut out = Scan {
        longest_run: 0,
        request_word: false,
    };
    let mut run = 0;
    // Words are runs of ASCII letters and digits: splitting the bytes is the same as
    // splitting the characters, since no byte of a multi-byte character is ASCII.
    for w in text
        .as_bytes()
        .split(|b| !b.is_ascii_alphanumeric())
        .filter(|w| !w.is_empty())
    {
        if w.iter().all(u8::is_ascii_digit) {
            run += w.len();
        } else {
            match classify_bytes(w) {
                Word::Digit(_) => run += 1,
                Word::Repeat(n) => run += n,
                Word::Request => {
                    out.request_word = true;
                    run = 0;
                }
                Word::Other => run = 0,
            }
        }
        out.longest_run = out.longest_run.max(run);
    }
    out
}

/// A word as the redactor sees it.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Word {
    /// A digit spelled out ("four", "oh").
    Digit(u8),
    /// "double" (2) or "triple" (3): the next digit repeats.
    Repeat(usize),
    /// A word every security-code request has one of ("security", "cvv", "back").
    Request,
    Other,
}

/// Classifies a word, in any case, without allocating.
fn classify(w: &str) -> Word {
    classify_bytes(w.as_bytes())
}

fn classify_bytes(w: &[u8]) -> Word {
    // Most words are none of these: reject them on their length (the words below have
    // 1 to 6, 8 or 12 letters) and their first letter.
    if !matches!(w.len(), 1..=6 | 8 | 12) {
        return Word::Other;
    }
    let first = w.first().map(u8::to_ascii_lowercase);
    if !matches!(
        first,
        Some(b'z' | b'o' | b't' | b'f' | b's' | b'e' | b'n' | b'd' | b'c' | b'v' | b'b')
    ) {
        return Word::Other;
    }
    let mut buf = [0u8; 12];
    let Some(lower) = buf.get_mut(..w.len()) else {
        return Word::Other;
    };
    lower.copy_from_slice(w);
    lower.make_ascii_lowercase();
    match &*lower {
        b"zero" | b"oh" | b"o" => Word::Digit(0),
        b"one" => Word::Digit(1),
        b"two" => Word::Digit(2),
        b"three" => Word::Digit(3),
        b"four" => Word::Digit(4),
        b"five" => Word::Digit(5),
        b"six" => Word::Digit(6),
        b"seven" => Word::Digit(7),
        b"eight" => Word::Digit(8),
        b"nine" => Word::Digit(9),
        b"double" => Word::Repeat(2),
        b"triple" => Word::Repeat(3),
        b"security" | b"cvv" | b"cvv2" | b"cvc" | b"cvc2" | b"cid" | b"verification" | b"digit"
        | b"digits" | b"back" => Word::Request,
        _ => Word::Other,
    }
}

/// One unit of a digit run: a span of the text and the digits it stands for.
#[derive(Debug, Clone)]
struct Unit {
    start: usize,
    end: usize,
    digits: Vec<u8>,
}

/// Splits text into words with byte spans; separators are whitespace and , ; : ( ) "
fn words(text: &str) -> Vec<(usize, usize)> {
    let mut out = Vec::new();
    let mut start = None;
    for (i, c) in text.char_indices() {
        let sep = c.is_whitespace() || matches!(c, ',' | ';' | '(' | ')' | '"' | '!' | '?');
        match (sep, start) {
            (true, Some(s)) => {
                out.push((s, i));
                start = None;
            }
            (false, None) => start = Some(i),
            _ => {}
        }
    }
    if let Some(s) = start {
        out.push((s, text.len()));
    }
    out
}

/// Groups the text's digit-bearing words into runs of adjacent units.
fn digit_runs(text: &str) -> Vec<Vec<Unit>> {
    let mut runs: Vec<Vec<Unit>> = Vec::new();
    let mut cur: Vec<Unit> = Vec::new();
    let mut repeat: Option<(usize, usize)> = None; // (count, start) after "double"/"triple"
    for (s, e) in words(text) {
        let raw = &text[s..e];
        let trimmed = raw.trim_end_matches(['.', '-']);
        let te = s + trimmed.len();
        let class = classify(trimmed);
        if let Word::Repeat(n) = class {
            repeat = Some((n, s));
            continue;
        }
        let mut unit = None;
        if !trimmed.is_empty()
            && trimmed
                .bytes()
                .all(|b| b.is_ascii_digit() || b == b'-' || b == b'.')
        {
            let digits: Vec<u8> = trimmed
                .bytes()
                .filter(u8::is_ascii_digit)
                .map(|b| b - b'0')
                .collect();
            if !digits.is_empty() && !trimmed.contains("..") {
                unit = Some(Unit {
                    start: s,
                    end: te,
                    digits,
                });
            }
        } else if let Word::Digit(d) = class {
            unit = Some(Unit {
                start: s,
                end: te,
                digits: vec![d],
            });
        }
        match unit {
            Some(mut u) => {
                if let Some((n, rs)) = repeat.take() {
                    if u.digits.len() == 1 {
                        u.digits = vec![u.digits[0]; n];
                        u.start = rs;
                    }
                }
                cur.push(u);
            }
            None => {
                repeat = None;
                if !cur.is_empty() {
                    runs.push(std::mem::take(&mut cur));
                }
            }
        }
    }
    if !cur.is_empty() {
        runs.push(cur);
    }
    runs
}

/// The Luhn check over a digit sequence.
pub fn luhn_valid(digits: &[u8]) -> bool {
    let mut sum = 0u32;
    for (i, &d) in digits.iter().rev().enumerate() {
        let mut v = d as u32;
        if i % 2 == 1 {
            v *= 2;
            if v > 9 {
                v -= 9;
            }
        }
        sum += v;
    }
    !digits.is_empty() && sum % 10 == 0
}

/// Finds `[PAN]` spans: within each run, the longest Luhn-valid window of whole units
/// holding 13–19 digits, left to right, not overlapping.
fn pan_spans(
    runs: &[Vec<Unit>],
    partial: bool,
    text_len: usize,
    text: &str,
) -> Vec<(usize, usize)> {
    let mut spans = Vec::new();
    for run in runs {
        let total: usize = run.iter().map(|u| u.digits.len()).sum();
        if total < 12 {
            continue;
        }
        let mut i = 0;
        let mut found_any = false;
        while i < run.len() {
            let mut best = None;
            let mut count = 0;
            let mut digits: Vec<u8> = Vec::with_capacity(19);
            for (j, unit) in run.iter().enumerate().skip(i) {
                count += unit.digits.len();
                if count > 19 {
                    break;
                }
                digits.extend_from_slice(&unit.digits);
                if count >= 13 && luhn_valid(&digits) {
                    best = Some(j);
                }
            }
            if let Some(j) = best {
                spans.push((run[i].start, run[j].end));
                found_any = true;
                i = j + 1;
            } else {
                i += 1;
            }
        }
        // A text may end in the middle of a card number: a partial anywhere short of
        // 20 digits, a final while it is still short of the usual 16.
        if !found_any && total <= if partial { 19 } else { 15 } {
            let last = run.last().expect("non-empty run");
            let tail_is_end = text[last.end..text_len].trim().is_empty();
            if tail_is_end {
                spans.push((run[0].start, last.end));
            }
        }
    }
    spans
}

/// How many units of `head` (the run that opens a segment) complete a card number
/// begun by `carried` (the digits that ended the speaker's last segment): the longest
/// Luhn-valid 13–19 digit run of all the carried digits and the first units of `head`;
/// `None` if there is none.
fn continued_pan(carried: &[u8], head: &[Unit]) -> Option<usize> {
    let mut best = None;
    let mut digits: Vec<u8> = Vec::with_capacity(38);
    let mut head_digits = 0;
    for (j, unit) in head.iter().enumerate() {
        head_digits += unit.digits.len();
        if head_digits > 18 {
            break;
        }
        let total = carried.len() + head_digits;
        if total > 19 {
            break;
        }
        if total < 13 {
            continue;
        }
        digits.clear();
        digits.extend_from_slice(carried);
        for u in &head[..=j] {
            digits.extend_from_slice(&u.digits);
        }
        if luhn_valid(&digits) {
            best = Some(j);
        }
    }
    best
}

/// A 3–4 digit code: one unit of 3–4 digits, or 3–4 single-digit units in a row, not
/// part of a longer run.
fn cvv_span(runs: &[Vec<Unit>]) -> Option<(usize, usize)> {
    for run in runs {
        let total: usize = run.iter().map(|u| u.digits.len()).sum();
        if (3..=4).contains(&total) {
            return Some((run[0].start, run[run.len() - 1].end));
        }
    }
    None
}

fn apply(text: &str, mut spans: Vec<(usize, usize, &'static str)>) -> String {
    spans.sort_by_key(|s| s.0);
    let mut out = String::with_capacity(text.len());
    let mut pos = 0;
    for (s, e, label) in spans {
        if s < pos {
            continue;
        }
        out.push_str(&text[pos..s]);
        out.push_str(label);
        pos = e;
    }
    out.push_str(&text[pos..]);
    out
}

/// Redacts one segment text. `is_final` segments update `state` (a request arms it, a
/// given code disarms it); partials read it only. The caller ends customer turns.
pub fn redact<'a>(
    text: &'a str,
    role: Role,
    is_final: bool,
    state: &mut RedactState,
) -> Cow<'a, str> {
    let scan = scan(text);
    // The request regex runs only when a word it needs is there.
    let request = if scan.request_word {
        cvv_request().find(text).map(|m| m.end())
    } else {
        None
    };
    let armed_before = state.cvv_armed > 0 && role == Role::Customer;
    if is_final && request.is_some() {
        state.cvv_armed = CVV_WINDOW;
    }
    let side = (role != Role::Customer) as usize;
    let carried = state.tails[side];
    if is_final {
        state.tails[side] = Tail::default();
    }
    if scan.longest_run < 3 && (carried.len == 0 || scan.longest_run == 0) {
        // Neither a card number (13+ digits) nor a code (3-4 digits) can be here, nor
        // the rest of a card number the last segment began.
        return Cow::Borrowed(text);
    }
    let runs = digit_runs(text);
    let mut spans: Vec<(usize, usize, &'static str)> =
        pan_spans(&runs, !is_final, text.len(), text)
            .into_iter()
            .map(|(s, e)| (s, e, "[PAN]"))
            .collect();
    let opens = |r: &[Unit]| !text[..r[0].start].chars().any(char::is_alphanumeric);
    let closes = |r: &[Unit]| {
        !text[r[r.len() - 1].end..]
            .chars()
            .any(char::is_alphanumeric)
    };
    // The rest of a card number the speaker's last segment began.
    if let Some(head) = runs.first().filter(|r| carried.len > 0 && opens(r)) {
        if let Some(j) = continued_pan(carried.digits(), head) {
            let (s, e) = (head[0].start, head[j].end);
            spans.retain(|&(a, b, _)| b <= s || a >= e);
            spans.push((s, e, "[PAN]"));
        }
    }
    if is_final {
        if let Some(last) = runs.last().filter(|r| closes(r)) {
            let covered = spans
                .iter()
                .any(|&(a, b, _)| a <= last[0].start && b >= last[last.len() - 1].end);
            if !covered {
                let mut digits: Vec<u8> = Vec::with_capacity(36);
                let continues = runs.len() == 1 && opens(last);
                if continues {
                    // The whole segment is digits: it continues the carried run.
                    digits.extend_from_slice(carried.digits());
                }
                for u in last {
                    digits.extend_from_slice(&u.digits);
                }
                if continues && (12..=15).contains(&digits.len()) {
                    // Together with the last segment, the start of a card number.
                    spans.push((last[0].start, last[last.len() - 1].end, "[PAN]"));
                }
                state.tails[side].set(&digits);
            }
        }
    }
    // The code follows a request: earlier in this text, or in an earlier segment.
    let after = match (armed_before, request) {
        (true, _) => Some(0),
        (false, Some(end)) => Some(end),
        (false, None) => None,
    };
    if let Some(from) = after {
        let later: Vec<Vec<Unit>> = runs
            .iter()
            .filter(|r| r[0].start >= from)
            .filter(|r| {
                !spans
                    .iter()
                    .any(|&(s, e, _)| r[0].start >= s && r[0].start < e)
            })
            .cloned()
            .collect();
        if let Some((s, e)) = cvv_span(&later) {
            spans.push((s, e, "[CVV]"));
            if is_final && role == Role::Customer {
                state.cvv_armed = 0;
            }
        }
    }
    if spans.is_empty() {
        Cow::Borrowed(text)
    } else {
        Cow::Owned(apply(text, spans))
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn every_spoken_digit_and_request_word_is_classified() {
        for w in [
            "zero",
            "oh",
            "O",
            "one",
            "two",
            "three",
            "four",
            "five",
            "six",
            "seven",
            "eight",
            "nine",
            "double",
            "Triple",
            "security",
            "cvv",
            "cvv2",
            "cvc",
            "cvc2",
            "cid",
            "verification",
            "digit",
            "digits",
            "back",
        ] {
            assert!(classify(w) != Word::Other, "{w}");
        }
        assert!(classify("threes") == Word::Other && classify("backing") == Word::Other);
    }

    use super::*;

    fn r(text: &str, fin: bool) -> String {
        redact(text, Role::Customer, fin, &mut RedactState::default()).into_owned()
    }

    #[test]
    fn luhn() {
        assert!(luhn_valid(&[
            4, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1
        ]));
        assert!(!luhn_valid(&[
            4, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 2
        ]));
    }

    #[test]
    fn pan_forms() {
        assert_eq!(
            r("it's 4111 1111 1111 1111 thanks", true),
            "it's [PAN] thanks"
        );
        assert_eq!(r("4111-1111-1111-1111.", true), "[PAN].");
        assert_eq!(r("card 4111111111111111", true), "card [PAN]");
        assert_eq!(
            r(
                "four one one one one one one one one one one one one one one one",
                true
            ),
            "[PAN]"
        );
        assert_eq!(
            r("call me on 555 867 5309", true),
            "call me on 555 867 5309"
        );
        assert_eq!(r("4111 1111 1111 1112", true), "4111 1111 1111 1112");
    }

    #[test]
    fn prefix_at_the_end() {
        assert_eq!(r("my card is 4111 1111 1111", false), "my card is [PAN]");
        assert_eq!(r("my card is 4111 1111 1111", true), "my card is [PAN]");
        assert_eq!(
            r("my card is 4111 1111 1111 and that's it", true),
            "my card is 4111 1111 1111 and that's it"
        );
    }

    #[test]
    fn a_card_number_read_across_segments() {
        let cust =
            |text: &str, st: &mut RedactState| redact(text, Role::Customer, true, st).into_owned();
        let mut st = RedactState::default();
        assert_eq!(cust("yeah it's 4111 1111", &mut st), "yeah it's 4111 1111");
        // The agent's segments in between do not end the customer's number.
        redact("mhm go on", Role::Other, true, &mut st);
        let part = redact(
            "1111 1111 and the expiry",
            Role::Customer,
            false,
            &mut st.clone(),
        );
        assert_eq!(
            part, "[PAN] and the expiry",
            "partials see the carried digits"
        );
        assert_eq!(
            cust("1111 1111 and the expiry is", &mut st),
            "[PAN] and the expiry is"
        );
        // Three segments of spoken digits.
        let mut st = RedactState::default();
        assert_eq!(cust("four one one one", &mut st), "four one one one");
        assert_eq!(cust("one one one one", &mut st), "one one one one");
        assert_eq!(cust("one one one one one one one one", &mut st), "[PAN]");
        // Digits that do not complete a card number are left alone, and a segment that
        // does not open with digits ends the carried run.
        let mut st = RedactState::default();
        cust("the order is 4111 1111", &mut st);
        assert_eq!(cust("1111 1112 right", &mut st), "1111 1112 right");
        let mut st = RedactState::default();
        cust("it's 4111 1111", &mut st);
        assert_eq!(
            cust("sorry and 1111 1111 yes", &mut st),
            "sorry and 1111 1111 yes"
        );
    }

    #[test]
    fn cvv() {
        let mut st = RedactState::default();
        let a = redact(
            "can you read me the three digit security code on the back",
            Role::Other,
            true,
            &mut st,
        );
        assert!(a.contains("security code"));
        assert_eq!(
            redact("sure it's 7 3 7", Role::Customer, true, &mut st),
            "sure it's [CVV]"
        );
        assert_eq!(
            redact("and my zip is 902", Role::Customer, true, &mut st),
            "and my zip is 902"
        );
        let mut st = RedactState::default();
        redact("what's the CVV", Role::Other, true, &mut st);
        st.end_customer_turn();
        st.end_customer_turn();
        assert_eq!(
            redact("room 101", Role::Customer, true, &mut st),
            "room 101"
        );
    }
}
