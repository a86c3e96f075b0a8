//! PCI redaction: card numbers in partials and finals, in digits and in words; codes
//! after a security-code request; Luhn-invalid numbers and phone numbers untouched.

use keel::text::{redact, RedactState, Role};

fn fin(text: &str) -> String {
    redact(text, Role::Customer, true, &mut RedactState::default()).into_owned()
}
fn partial(text: &str) -> String {
    redact(text, Role::Customer, false, &mut RedactState::default()).into_owned()
}

#[test]
fn card_numbers_in_finals() {
    let table = [
        ("my card is 4111 1111 1111 1111", "my card is [PAN]"),
        ("4111-1111-1111-1111", "[PAN]"),
        (
            "it's 4111111111111111, expiry 12/27",
            "it's [PAN], expiry 12/27",
        ),
        ("5500 0000 0000 0004 thanks", "[PAN] thanks"),
        ("amex 3782 822463 10005", "amex [PAN]"),
        (
            "four one one one, one one one one, one one one one, one one one one",
            "[PAN]",
        ),
        (
            "Four One One One one one one one one one one one one one one one.",
            "[PAN].",
        ),
        (
            "four double one one one one one one one one one one one one one one",
            "[PAN]",
        ),
        (
            "4111 1111 1111 1111 and 5500 0000 0000 0004",
            "[PAN] and [PAN]",
        ),
    ];
    for (input, want) in table {
        assert_eq!(fin(input), want, "{input}");
    }
}

#[test]
fn other_numbers_untouched() {
    let table = [
        "call me back on 555 867 5309",
        "my number is 0 7 7 0 0 9 0 0 1 2 3",
        "4111 1111 1111 1112",
        "order 55123 was two weeks late",
        "I paid $2,400 on the 3rd",
        "the account ends in 1111",
        "reference 1234567890123 isn't valid",
    ];
    for input in table {
        assert_eq!(fin(input), input);
    }
}

#[test]
fn card_numbers_in_partials() {
    assert_eq!(
        partial("my card is 4111 1111 1111 1111"),
        "my card is [PAN]"
    );
    assert_eq!(partial("my card is 4111 1111 1111"), "my card is [PAN]");
    assert_eq!(
        partial("my card is four one one one one one one one one one one one"),
        "my card is [PAN]"
    );
    assert_eq!(
        partial("call me on 555 867 5309"),
        "call me on 555 867 5309"
    );
    assert_eq!(
        partial("my card is 4111 1111 1111 and"),
        "my card is 4111 1111 1111 and"
    );
}

#[test]
fn security_codes_after_a_request() {
    let mut st = RedactState::default();
    redact(
        "and the three digit security code on the back?",
        Role::Other,
        true,
        &mut st,
    );
    assert_eq!(
        redact("um it's seven three seven", Role::Customer, false, &mut st),
        "um it's [CVV]"
    );
    assert_eq!(
        redact("um it's seven three seven", Role::Customer, true, &mut st),
        "um it's [CVV]"
    );
    assert_eq!(
        redact(
            "and I ordered 2 of them for 300",
            Role::Customer,
            true,
            &mut st
        ),
        "and I ordered 2 of them for 300"
    );

    let mut st = RedactState::default();
    assert_eq!(
        redact("the CVV is 4821", Role::Customer, true, &mut st),
        "the CVV is [CVV]"
    );
    assert_eq!(
        redact(
            "I live at 221 Baker Street",
            Role::Customer,
            true,
            &mut RedactState::default()
        ),
        "I live at 221 Baker Street"
    );
}

/// A card number read across segments never reaches an output whole: the whole call's
/// output (nudges, evidence, record) and its QA timeline hold no run of 12 or more digits,
/// and the segments that complete the number show `[PAN]`.
#[test]
fn a_card_number_split_across_segments_is_redacted_in_every_output() {
    use keel::coach::Policy;
    use keel::replay;
    let call = [
        r#"{"type":"start","call_id":"c-card","tenant":"t"}"#,
        r#"{"type":"transcript","segment_id":"a1","speaker":"agent","text":"can I take the card number please","is_final":true,"start_ms":0,"end_ms":2000}"#,
        r#"{"type":"transcript","segment_id":"c1","speaker":"customer","text":"sure it's 4111 1111","is_final":true,"start_ms":2500,"end_ms":4000}"#,
        r#"{"type":"transcript","segment_id":"c2","speaker":"customer","text":"1111","is_final":false,"start_ms":4500,"end_ms":5000}"#,
        r#"{"type":"transcript","segment_id":"c2","speaker":"customer","text":"1111 1111 this is ridiculous by the way","is_final":true,"start_ms":4500,"end_ms":7000}"#,
        r#"{"type":"transcript","segment_id":"c3","speaker":"customer","text":"five five five five","is_final":true,"start_ms":7500,"end_ms":8000}"#,
        r#"{"type":"transcript","segment_id":"c4","speaker":"customer","text":"five five five five five five five five","is_final":true,"start_ms":8500,"end_ms":9000}"#,
        r#"{"type":"transcript","segment_id":"c5","speaker":"customer","text":"four four four four","is_final":true,"start_ms":9500,"end_ms":10000}"#,
        r#"{"type":"end","reason":"completed"}"#,
    ]
    .join("\n");
    let lines = replay::parse_fixture("c-card.jsonl", &call).expect("valid call");
    let lex = super::support::product_lexicon();
    let steps = replay::coach(&lex, &Policy::default(), &lines);
    let json = replay::format_json(&steps);
    let text = replay::format_text(&steps);
    for out in [&json, &text] {
        let longest = out
            .split(|c: char| !c.is_ascii_digit() && c != ' ')
            .map(|s| s.chars().filter(char::is_ascii_digit).count())
            .max()
            .unwrap_or(0);
        assert!(longest < 12, "a long digit run escaped: {out}");
    }
    assert!(json.contains("[PAN] this is ridiculous"), "{json}");
    assert!(text.contains("[PAN] this is ridiculous"), "{text}");
    // 5555 5555 5555 4444 spoken as words over three segments: from the twelfth digit on,
    // every part is redacted.
    assert!(
        !text.contains("five five five five five five five five"),
        "{text}"
    );
    assert!(!text.contains("four four four four"), "{text}");
}
