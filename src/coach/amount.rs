//! Sums of money as speech engines print them: "$2,400", "2400 bucks", "two thousand four
//! hundred dollars", "£50", "fifty quid", "1.2k". The currency is the one a symbol or
//! word names, else the call's.

fn word_value(w: &str) -> Option<u64> {
    Some(match w {
        "zero" => 0,
        "one" | "a" => 1,
        "two" => 2,
        "three" => 3,
        "four" => 4,
        "five" => 5,
        "six" => 6,
        "seven" => 7,
        "eight" => 8,
        "nine" => 9,
        "ten" => 10,
        "eleven" => 11,
        "twelve" => 12,
        "thirteen" => 13,
        "fourteen" => 14,
        "fifteen" => 15,
        "sixteen" => 16,
        "seventeen" => 17,
        "eighteen" => 18,
        "nineteen" => 19,
        "twenty" => 20,
        "thirty" => 30,
        "forty" | "fourty" => 40,
        "fifty" => 50,
        "sixty" => 60,
        "seventy" => 70,
        "eighty" => 80,
        "ninety" => 90,
        _ => return None,
    })
}

fn currency_of(word: &str, call_currency: &str) -> Option<String> {
    let dollar = |c: &str| {
        if c.ends_with('D') {
            c.to_string()
        } else {
            "USD".to_string()
        }
    };
    Some(match word {
        "$" | "dollar" | "dollars" | "bucks" | "buck" => dollar(call_currency),
        "usd" => "USD".into(),
        "cad" => "CAD".into(),
        "aud" => "AUD".into(),
        "£" | "pound" | "pounds" | "quid" | "gbp" | "fiver" | "tenner" => "GBP".into(),
        "€" | "euro" | "euros" | "eur" => "EUR".into(),
        _ => return None,
    })
}

/// The first sum of money in normalised text, with its currency.
pub fn parse_amount(text: &str, call_currency: &str) -> Option<(f64, String)> {
    let mut currency: Option<String> = None;
    let mut value: Option<f64> = None;
    // Spelled numbers: total and the group being built.
    let (mut total, mut group, mut spelled) = (0u64, 0u64, false);
    let words: Vec<&str> = text.split(' ').collect();
    for (i, raw) in words.iter().enumerate() {
        let mut w = *raw;
        for sym in ["$", "£", "€"] {
            if let Some(rest) = w.strip_prefix(sym) {
                currency = currency.or_else(|| currency_of(sym, call_currency));
                w = rest;
            }
        }
        if w.is_empty() {
            continue;
        }
        if let Some(c) = currency_of(w, call_currency) {
            currency = currency.or(Some(c));
            match w {
                "fiver" => value = value.or(Some(5.0)),
                "tenner" => value = value.or(Some(10.0)),
                _ => {}
            }
            if value.is_some() || spelled {
                break;
            }
            continue;
        }
        if value.is_none() && w.bytes().next().is_some_and(|b| b.is_ascii_digit()) {
            let (num, k) = match w.strip_suffix('k') {
                Some(n) => (n, 1000.0),
                None => (w, 1.0),
            };
            if let Ok(v) = num.replace(',', "").parse::<f64>() {
                let k = if words.get(i + 1) == Some(&"k") || words.get(i + 1) == Some(&"grand") {
                    1000.0
                } else {
                    k
                };
                value = Some(v * k);
            }
            continue;
        }
        if value.is_none() {
            match w {
                "hundred" => {
                    group = group.max(1) * 100;
                    spelled = true;
                }
                "thousand" | "grand" => {
                    total += group.max(1) * 1000;
                    group = 0;
                    spelled = true;
                }
                "million" => {
                    total += group.max(1) * 1_000_000;
                    group = 0;
                    spelled = true;
                }
                "and" if spelled => {}
                _ => {
                    // "a" counts only as "a hundred", "a thousand".
                    let lone_a = w == "a"
                        && !matches!(words.get(i + 1), Some(&("hundred" | "thousand" | "grand")));
                    match word_value(w) {
                        Some(v) if !lone_a => {
                            // "one eighty" is a hundred and eighty, as prices are said.
                            if (1..=9).contains(&group)
                                && total == 0
                                && (20..=90).contains(&v)
                                && v % 10 == 0
                            {
                                group *= 100;
                            }
                            group += v;
                            spelled = true;
                        }
                        _ if spelled => break,
                        _ => {}
                    }
                }
            }
        }
    }
    let value = value.or(spelled.then_some((total + group) as f64))?;
    Some((value, currency.unwrap_or_else(|| call_currency.to_string())))
}

#[cfg(test)]
mod tests {
    use super::parse_amount;

    #[test]
    fn amounts_as_spoken() {
        let p = |t: &str| parse_amount(t, "USD").unwrap();
        assert_eq!(p("$2,400"), (2400.0, "USD".into()));
        assert_eq!(
            p("two thousand four hundred dollars"),
            (2400.0, "USD".into())
        );
        assert_eq!(p("2400 bucks"), (2400.0, "USD".into()));
        assert_eq!(p("£50"), (50.0, "GBP".into()));
        assert_eq!(p("fifty quid"), (50.0, "GBP".into()));
        assert_eq!(p("49.99 dollars"), (49.99, "USD".into()));
        assert_eq!(p("a hundred and fifty euros"), (150.0, "EUR".into()));
        assert_eq!(p("three hundred and fifty bucks"), (350.0, "USD".into()));
        assert_eq!(p("1.2k"), (1200.0, "USD".into()));
        assert_eq!(p("two grand"), (2000.0, "USD".into()));
        assert_eq!(p("one eighty dollars"), (180.0, "USD".into()));
        assert_eq!(p("twenty one dollars"), (21.0, "USD".into()));
        assert_eq!(parse_amount("$40", "CAD").unwrap(), (40.0, "CAD".into()));
        assert_eq!(parse_amount("the refund", "USD"), None);
    }
}
