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
