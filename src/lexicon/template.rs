//! Template placeholders: shared regular-expression pieces for numbers, amounts,
//! durations, days, dates, clock times and reference codes, written against the
//! normaliser's output (lower-case words separated by single spaces).

use std::collections::HashSet;

const NUM_WORD: &str = "(?:zero|one|two|three|four|five|six|seven|eight|nine|ten|eleven|twelve|thirteen|fourteen|fifteen|sixteen|seventeen|eighteen|nineteen|twenty|thirty|forty|fourty|fifty|sixty|seventy|eighty|ninety|hundred|thousand|million|grand)";
const DIGITS: &str = r"(?:[0-9]{1,3}(?:,[0-9]{3})+|[0-9]+)(?:\.[0-9]+)?";
const CURRENCY_WORD: &str = "(?:dollars?|bucks|usd|pounds?|quid|gbp|euros?|eur|cents|pence|p)";
const UNIT: &str =
    "(?:minutes?|mins?|hours?|hrs?|days?|business days?|working days?|weeks?|months?)";
const WEEKDAY: &str =
    "(?:monday|tuesday|wednesday|thursday|friday|saturday|sunday|tomorrow|today|tonight)";
const MONTH: &str = "(?:january|february|march|april|may|june|july|august|september|october|november|december|jan|feb|mar|apr|jun|jul|aug|sep|sept|oct|nov|dec)";
const ORD_WORD: &str = "(?:first|second|third|fourth|fifth|sixth|seventh|eighth|ninth|tenth|eleventh|twelfth|thirteenth|fourteenth|fifteenth|sixteenth|seventeenth|eighteenth|nineteenth|twentieth|thirtieth|twenty (?:first|second|third|fourth|fifth|sixth|seventh|eighth|ninth)|thirty first)";
const DIGIT_WORD: &str = "(?:zero|oh|one|two|three|four|five|six|seven|eight|nine)";

fn number() -> String {
    format!("(?:{DIGITS}|(?:(?:a|one) )?{NUM_WORD}(?: (?:and )?{NUM_WORD})*)")
}

fn amount() -> String {
    let n = number();
    // The signs as an alternation, not a class: a class of non-ASCII characters would
    // keep the template automaton from working on bytes.
    format!(r"(?:(?:\$|£|€) ?{DIGITS}(?: ?k)?(?: {CURRENCY_WORD})?|{n} {CURRENCY_WORD}|{DIGITS}k)")
}

fn duration() -> String {
    let n = number();
    format!(
        r"(?:(?:{n}|a|an|a couple of|a couple|couple of|a few|few|one or two|two or three|{n} (?:to|or) {n}|\d+-\d+) {UNIT})"
    )
}

fn date() -> String {
    format!(
        r"(?:the \d{{1,2}}(?:st|nd|rd|th)|{MONTH} \d{{1,2}}(?:st|nd|rd|th)?|{MONTH} (?:the )?{ORD_WORD}|the {ORD_WORD}(?: of {MONTH})?|\d{{1,2}}(?:st|nd|rd|th)? of {MONTH}|\d{{1,2}}/\d{{1,2}}(?:/\d{{2,4}})?)"
    )
}

fn clock() -> String {
    format!(
        r"(?:\d{{1,2}}(?::\d{{2}})?(?: ?(?:am|pm|a m|p m|o'clock|oclock))|\d{{1,2}}:\d{{2}}|{NUM_WORD}(?: {NUM_WORD})? (?:am|pm|a m|p m|o'clock|oclock)|noon|midday|midnight|end of (?:the )?day|close of business|end of business|eod|cob)"
    )
}

fn reference() -> String {
    format!(
        r"(?:[a-z]{{0,5}}-?\d{{4,}}[a-z0-9-]*|[a-z]{{1,5}}\d{{3,}}[a-z0-9]*|\d{{3,}}-[0-9a-z-]+|(?:[a-z] ){{1,4}}\d{{3,}}|(?:{DIGIT_WORD} ){{3,}}{DIGIT_WORD})"
    )
}

/// Placeholder names and their expansions.
pub fn placeholders() -> Vec<(&'static str, String)> {
    vec![
        ("number", number()),
        ("amount", amount()),
        ("unit", UNIT.to_string()),
        ("duration", duration()),
        ("weekday", WEEKDAY.to_string()),
        ("month", MONTH.to_string()),
        ("date", date()),
        ("clock", clock()),
        ("ref", reference()),
    ]
}

/// Expands the placeholders of a template and checks that the result compiles.
/// `{2,3}`-style repetitions are left alone: only `{name}` with a known name expands.
pub fn expand(template: &str) -> Result<String, String> {
    if template.trim().is_empty() {
        return Err("empty template".into());
    }
    let table = placeholders();
    let mut out = String::with_capacity(template.len() * 4);
    let mut rest = template;
    while let Some(open) = rest.find('{') {
        out.push_str(&rest[..open]);
        let after = &rest[open + 1..];
        let Some(close) = after.find('}') else {
            out.push_str(&rest[open..]);
            rest = "";
            break;
        };
        let name = &after[..close];
        if name.chars().all(|c| c.is_ascii_lowercase() || c == '_') && !name.is_empty() {
            match table.iter().find(|(n, _)| *n == name) {
                Some((_, re)) => out.push_str(re),
                None => {
                    return Err(format!(
                        "unknown placeholder {{{name}}} (known: {})",
                        table
                            .iter()
                            .map(|(n, _)| format!("{{{n}}}"))
                            .collect::<Vec<_>>()
                            .join(", ")
                    ))
                }
            }
        } else {
            out.push('{');
            out.push_str(name);
            out.push('}');
        }
        rest = &after[close + 1..];
    }
    out.push_str(rest);
    regex::Regex::new(&anchored(&out)).map_err(|e| {
        let msg = e.to_string();
        msg.lines()
            .last()
            .unwrap_or("invalid regular expression")
            .trim()
            .to_string()
    })?;
    Ok(out)
}

/// The form a template runs in: whole words, ending at the newest word. Normalised text
/// is plain words, so the classes `\d`, `\w` and `\s` are ASCII: Unicode classes would
/// make every template orders of magnitude slower for nothing.
pub fn anchored(expanded: &str) -> String {
    format!("(?:^| )(?:{})$", ascii_classes(expanded))
}

fn ascii_classes(expanded: &str) -> String {
    expanded
        .replace(r"\d", "[0-9]")
        .replace(r"\w", "[0-9a-z']")
        .replace(r"\s", " ")
        .replace(r"\S", "[^ ]")
}

/// When a template can match: at words that contain a digit, at these words, where the
/// last two words are one of these pairs, or (`always`) at every word.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Ends {
    pub always: bool,
    pub digits: bool,
    pub words: HashSet<String>,
    pub pairs: HashSet<String>,
}

const DIGIT_MARK: char = '\u{1}';
const WILD_MARK: char = '\u{2}';
const TAIL_LIMIT: usize = 4096;

/// Where a template's match can end, read off its syntax. Templates are tried only at
/// those words, so that a lexicon with hundreds of templates stays cheap:
///
/// - the last two words of every way the match can end (`kill you`), when there are
///   few enough of them;
/// - otherwise the last word (`dollars`);
/// - a word with a digit, when the match can end on a digit class;
/// - and every word, when a class of letters can end the match (`\w+`).
pub fn ends(expanded: &str) -> Ends {
    use regex_syntax::ParserBuilder;
    let fallback = || Ends {
        always: true,
        digits: true,
        ..Ends::default()
    };
    let Ok(hir) = ParserBuilder::new().build().parse(&ascii_classes(expanded)) else {
        return fallback();
    };
    if let Some(tails) = tails(&hir, 2) {
        let mut out = Ends::default();
        let mut ok = true;
        for t in &tails {
            let mut it = t.rsplit(' ');
            let last = it.next().unwrap_or("");
            let prev = it.next();
            if last.contains(DIGIT_MARK) {
                out.digits = true;
            } else if last.is_empty() || last.contains(WILD_MARK) {
                ok = false;
            } else {
                match prev {
                    Some(p)
                        if !p.is_empty() && !p.contains(DIGIT_MARK) && !p.contains(WILD_MARK) =>
                    {
                        out.pairs.insert(format!("{p} {last}"));
                    }
                    _ => {
                        out.words.insert(last.to_string());
                    }
                }
            }
        }
        if ok {
            return out;
        }
    }
    let Some(tails) = tails(&hir, 1) else {
        return fallback();
    };
    let mut out = Ends::default();
    for t in tails {
        let last = t.rsplit(' ').next().unwrap_or("");
        if last.contains(DIGIT_MARK) {
            out.digits = true;
        } else if last.is_empty() || last.contains(WILD_MARK) {
            return fallback();
        } else {
            out.words.insert(last.to_string());
        }
    }
    out
}

fn is_digitish_class(c: &regex_syntax::hir::Class) -> bool {
    use regex_syntax::hir::Class;
    let ok = |lo: u32, hi: u32| {
        (lo >= '0' as u32 && hi <= '9' as u32)
            || (lo == hi && ",.:/-$£€".contains(char::from_u32(lo).unwrap_or('x')))
    };
    match c {
        Class::Unicode(u) => u
            .ranges()
            .iter()
            .all(|r| ok(r.start() as u32, r.end() as u32)),
        Class::Bytes(b) => b
            .ranges()
            .iter()
            .all(|r| ok(r.start() as u32, r.end() as u32)),
    }
}

/// The mark a class leaves in a tail: digits, or any letters; `None` when it can
/// match a space (then words cannot be told apart).
fn class_mark(c: &regex_syntax::hir::Class) -> Option<char> {
    use regex_syntax::hir::Class;
    if is_digitish_class(c) {
        return Some(DIGIT_MARK);
    }
    let has_space = match c {
        Class::Unicode(u) => u
            .ranges()
            .iter()
            .any(|r| r.start() <= ' ' && ' ' <= r.end()),
        Class::Bytes(b) => b
            .ranges()
            .iter()
            .any(|r| r.start() <= b' ' && b' ' <= r.end()),
    };
    (!has_space).then_some(WILD_MARK)
}

/// A small class of letters stands for its letters; a larger one leaves a mark.
fn class_tails(c: &regex_syntax::hir::Class) -> Option<Vec<String>> {
    use regex_syntax::hir::Class;
    if let Class::Unicode(u) = c {
        let n: u32 = u
            .ranges()
            .iter()
            .map(|r| r.end() as u32 - r.start() as u32 + 1)
            .sum();
        if n <= 4
            && !u
                .ranges()
                .iter()
                .any(|r| r.start() <= ' ' && ' ' <= r.end())
        {
            return Some(
                u.ranges()
                    .iter()
                    .flat_map(|r| r.start()..=r.end())
                    .map(|ch| ch.to_string())
                    .collect(),
            );
        }
    }
    Some(vec![class_mark(c)?.to_string()])
}

/// A tail is closed once it holds `words` whole words (that many spaces), or once its
/// last word holds a digit (digits trigger on their own): what comes before it cannot
/// change the trigger.
fn closed(t: &str, words: usize) -> bool {
    t.rsplit(' ').next().is_some_and(|w| w.contains(DIGIT_MARK)) || t.matches(' ').count() >= words
}

/// Every string a match of `h` can end with, far enough back to hold `words` whole words
/// (or to the start of `h`); `None` when a letter class can end it or there are too many.
fn tails(h: &regex_syntax::hir::Hir, words: usize) -> Option<Vec<String>> {
    use regex_syntax::hir::HirKind;
    let out = match h.kind() {
        HirKind::Empty | HirKind::Look(_) => vec![String::new()],
        HirKind::Literal(l) => vec![String::from_utf8_lossy(&l.0).into_owned()],
        HirKind::Class(c) => class_tails(c)?,
        HirKind::Capture(c) => tails(&c.sub, words)?,
        // A repeated class is one run of characters: one mark.
        HirKind::Repetition(r) if matches!(r.sub.kind(), HirKind::Class(_)) => {
            let HirKind::Class(c) = r.sub.kind() else {
                unreachable!()
            };
            let mut t = match class_tails(c)? {
                one if r.max == Some(1) => one,
                _ => vec![class_mark(c)?.to_string()],
            };
            if r.min == 0 {
                t.push(String::new());
            }
            t
        }
        // A doubled letter ("cancel+ed"): once or twice.
        HirKind::Repetition(r) if matches!(r.sub.kind(), HirKind::Literal(l) if l.0.len() == 1 && l.0[0] != b' ') =>
        {
            let HirKind::Literal(l) = r.sub.kind() else {
                unreachable!()
            };
            let c = String::from_utf8_lossy(&l.0).into_owned();
            let mut t = vec![c.clone(), format!("{c}{c}")];
            if r.min == 0 {
                t.push(String::new());
            }
            t
        }
        HirKind::Repetition(r) => {
            let mut t = tails(&r.sub, words)?;
            let open = t.iter().any(|s| !closed(s, words));
            if r.max != Some(1) && r.max != Some(0) && open {
                // The tail may run on into an earlier repetition: read two of them
                // ("twenty five"), one that runs on into what comes before, or none
                // (a superset when more are required).
                let two = concat_tails(&[(*r.sub).clone(), (*r.sub).clone()], words)?;
                if !two.iter().all(|s| closed(s, words)) {
                    return None;
                }
                t.extend(two);
            }
            if r.min == 0 {
                t.push(String::new());
            }
            t
        }
        HirKind::Alternation(v) => {
            let mut all = Vec::new();
            for s in v {
                all.extend(tails(s, words)?);
            }
            shorten(all, words)
        }
        HirKind::Concat(v) => concat_tails(v, words)?,
    };
    (out.len() <= TAIL_LIMIT).then_some(out)
}

fn concat_tails(items: &[regex_syntax::hir::Hir], words: usize) -> Option<Vec<String>> {
    let Some((last, rest)) = items.split_last() else {
        return Some(vec![String::new()]);
    };
    let mut out = Vec::new();
    let mut open = Vec::new();
    for a in tails(last, words)? {
        if closed(&a, words) {
            out.push(a);
        } else {
            open.push(a);
        }
    }
    if !open.is_empty() {
        // What comes before needs to supply only the words the open tails lack: reading
        // no further back keeps an earlier repetition ("(\w+ ){0,3}") from spoiling
        // tails that close before it.
        let have = open
            .iter()
            .map(|a| a.matches(' ').count())
            .min()
            .unwrap_or(0);
        let pre = concat_tails(rest, words.saturating_sub(have).max(1))?;
        if pre.len() * open.len() > TAIL_LIMIT {
            return None;
        }
        for p in &pre {
            for a in &open {
                out.push(format!("{p}{a}"));
            }
        }
    }
    Some(shorten(out, words))
}

/// Only the last `words` words of a tail matter (from the space before them): longer
/// tails are cut there, and tails that become equal are kept once, so that long lists
/// before the last words do not multiply.
fn shorten(tails: Vec<String>, words: usize) -> Vec<String> {
    let mut seen = HashSet::new();
    let mut out = Vec::with_capacity(tails.len());
    for t in tails {
        let t = match t.rmatch_indices(' ').nth(words.saturating_sub(1)) {
            Some((at, _)) if t.matches(' ').count() > words => t[at..].to_string(),
            _ => t,
        };
        if seen.insert(t.clone()) {
            out.push(t);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use regex::Regex;

    fn m(t: &str, text: &str) -> bool {
        Regex::new(&anchored(&expand(t).unwrap()))
            .unwrap()
            .is_match(text)
    }

    #[test]
    fn placeholders_match_speech() {
        assert!(m("{amount}", "i want my $2,400"));
        assert!(m("{amount}", "two thousand four hundred dollars"));
        assert!(m("{amount}", "600 bucks"));
        assert!(m("{amount}", "£50"));
        assert!(!m("{amount}", "order 55123"));
        assert!(m("within {duration}", "within 48 hours"));
        assert!(m("within {duration}", "within three to five business days"));
        assert!(m("by {weekday}", "by tuesday"));
        assert!(m("between {clock} and {clock}", "between 8 am and 12 pm"));
        assert!(m("number is {ref}", "number is rma-55123"));
        assert!(m("number is {ref}", "number is five five one two three"));
        assert!(m("on {date}", "on the 15th"));
        assert!(expand("{nope}").is_err());
        assert!(expand("(unclosed").is_err());
        assert!(expand("a{2,3}").is_ok());
    }

    #[test]
    fn ends_are_the_last_words() {
        let e = ends(&expand("within {duration}").unwrap());
        assert!(!e.digits, "a duration ends on its unit");
        assert!(e.words.contains("hours") && e.words.contains("hour") && e.words.contains("days"));
        assert!(!e.words.contains("within"));
        let e = ends(&expand("(i|we) will (kill|hurt) (you|ya)").unwrap());
        assert!(!e.digits && e.words.is_empty());
        assert_eq!(e.pairs.len(), 4);
        assert!(e.pairs.contains("kill you") && e.pairs.contains("hurt ya"));
        let e = ends("refund");
        assert!(e.words.contains("refund") && e.pairs.is_empty());
        let e = ends(&expand("{amount}").unwrap());
        assert!(
            e.digits
                && (e.words.contains("dollars") || e.pairs.iter().any(|p| p.ends_with(" dollars"))),
            "{e:?}"
        );
        let e = ends(r"sorry( \w+){0,2}");
        assert!(e.always);
        let e = ends(&expand("(it|this) (will not|does not) (work|turn on)").unwrap());
        assert!(e.pairs.contains("turn on") && e.pairs.contains("not work"));
        let e = ends(r"(the|my) (\w+ )?(phone|laptop) (will not|does not) (work|turn on)");
        assert!(e.pairs.contains("turn on") && !e.always);
        let e = ends("thanks for the (update|call)");
        assert!(e.pairs.contains("the update") && e.pairs.contains("the call"));
        // A gap further back does not stop the last two words from being read, so a
        // template ending on a common word ends on a pair, not on every "the".
        let e = ends(r"i ordered (a|the)( \w+){0,3} (and|but) (i |they )?(got|was sent) (a|the)");
        assert!(e.words.is_empty() && !e.always, "{e:?}");
        assert!(e.pairs.contains("got the") && e.pairs.contains("sent a"));
        // Long lists before the last words are read only as far as they matter.
        let e = ends(
            "(i|we) (just |really |still )?(want|need|demand|expect) (a |my |the |a full |my whole )?(refund|credit for (this|it))",
        );
        assert!(e.words.is_empty(), "{e:?}");
        assert!(e.pairs.contains("my refund") && e.pairs.contains("for it"));
        // Repeated words: the last two repetitions, or one after what comes before.
        let e = ends("(usd|gbp) (one|two)( (and )?(one|two))*");
        assert!(e.pairs.contains("usd one") && e.pairs.contains("one two"));
        assert!(e.pairs.contains("and two") && e.words.is_empty(), "{e:?}");
    }
}
