//! Template placeholders: shared regular-expression pieces for numbers, amounts,
//! durations, days, dates, clock times and reference codes, written against the
//! normaliser's output (lower-case words separated by single spaces).

use std::collections::HashSet;

const NUM_WORD: &str = "(?:zero|one|two|three|four|five|six|seven|eight|nine|ten|eleven|twelve|thirteen|fourteen|fifteen|sixteen|seventeen|eighteen|nineteen|twenty|thirty|forty|fourty|fifty|sixty|seventy|eighty|ninety|hundred|thousand|million|grand)";
const DIGITS: &str = r"(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?";
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
    format!(r"(?:[$£€] ?{DIGITS}(?: ?k)?(?: {CURRENCY_WORD})?|{n} {CURRENCY_WORD}|{DIGITS}k)")
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

/// The form a template runs in: whole words, ending at the newest word.
pub fn anchored(expanded: &str) -> String {
    format!("(?:^| )(?:{expanded})$")
}

/// Words a template can end on are the words it names; templates are tried only when
/// the newest word has a digit or is one of these. Common function words are left out:
/// no template should end on them.
pub fn trigger_words(expanded: &str, into: &mut HashSet<String>) {
    const STOP: &[&str] = &[
        "a", "an", "the", "of", "to", "and", "or", "in", "on", "at", "by", "for", "is", "it", "i",
        "you", "your", "this", "that", "be", "will", "from", "with", "we", "my", "me", "s", "d",
        "k", "p", "m", "are", "have", "has", "do", "not", "can", "no", "yes",
    ];
    let mut word = String::new();
    let flush = |w: &mut String, into: &mut HashSet<String>| {
        if !w.is_empty() && !STOP.contains(&w.as_str()) {
            if let Some(stem) = w.strip_suffix('s') {
                if !stem.is_empty() && !STOP.contains(&stem) {
                    into.insert(stem.to_string());
                }
            }
            into.insert(std::mem::take(w));
        }
        w.clear();
    };
    let mut escaped = false;
    for c in expanded.chars() {
        if escaped {
            escaped = false;
            flush(&mut word, into);
            continue;
        }
        if c == '\\' {
            escaped = true;
            flush(&mut word, into);
            continue;
        }
        if c.is_ascii_lowercase() || c == '\'' {
            word.push(c);
        } else {
            flush(&mut word, into);
        }
    }
    flush(&mut word, into);
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
}
