//! Shared helpers: a small test lexicon (plus the product's modifier cues), and the
//! product lexicon set.

use std::path::PathBuf;
use std::sync::{Arc, OnceLock};

use keel::lexicon::load::parse_file;
use keel::lexicon::Lexicon;
use keel::matcher::{Hit, Side};

pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Categories that exercise each matching mechanism, independent of product wording.
pub const TEST_LEXICON: &str = r#"
[[category]]
id = "t.insult"
speaker = "customer"
kind = "insult"
directed = true
vocative = true
entries = ["idiot", "moron", "asshole", "ass", "cunt", "cock", "rapist", "anal", "bitch"]

[[category]]
id = "t.profanity"
speaker = "customer"
kind = "profanity"
directed = true
entries = ["fuck", "fucking", "damn", "shit", "bullshit", "hell"]
exceptions = ["are you fucking kidding", "damn right", "what the hell"]

[[category]]
id = "t.threat"
speaker = "customer"
kind = "threat"
negatable = true
reportable = true
entries = ["kill you", "i know where you live", "hurt you"]
exceptions = ["killing me"]

[[category]]
id = "t.frustration"
speaker = "customer"
kind = "frustration"
entries = ["this is ridiculous", "sick and tired", "third time ... calling"]

[[category]]
id = "t.apology"
speaker = "agent"
kind = "apology_specific"
entries = ["sorry ... for the delay", "apologize ...5 inconvenience"]

[[category]]
id = "t.timeframe"
speaker = "agent"
kind = "timeframe"
templates = ["within {duration}", "by {weekday}"]

[[category]]
id = "t.amount"
speaker = "any"
kind = "amount"
templates = ["{amount}"]
"#;

pub fn test_lexicon() -> Arc<Lexicon> {
    static LEX: OnceLock<Arc<Lexicon>> = OnceLock::new();
    LEX.get_or_init(|| {
        let mods_path = root().join("lexicons/en/modifiers.toml");
        let mods = std::fs::read_to_string(&mods_path).expect("modifiers file");
        let mut cats = parse_file("test.toml", TEST_LEXICON).expect("test lexicon parses");
        cats.extend(parse_file("modifiers.toml", &mods).expect("modifiers parse"));
        let sources = vec![
            ("test.toml".to_string(), TEST_LEXICON.to_string()),
            ("modifiers.toml".to_string(), mods),
        ];
        Arc::new(Lexicon::compile(cats, &sources).expect("test lexicon compiles"))
    })
    .clone()
}

pub fn product_lexicon() -> Arc<Lexicon> {
    static LEX: OnceLock<Arc<Lexicon>> = OnceLock::new();
    LEX.get_or_init(|| {
        Arc::new(
            Lexicon::load(&root().join("lexicons"))
                .unwrap_or_else(|e| panic!("product lexicons: {e}")),
        )
    })
    .clone()
}

/// (category id, directed) of each hit, in order.
pub fn labels(lex: &Lexicon, hits: &[Hit]) -> Vec<(String, bool)> {
    hits.iter()
        .map(|h| (lex.categories[h.category as usize].id.clone(), h.directed))
        .collect()
}

pub fn speak(lex: &Lexicon, side: Side, text: &str) -> Vec<Hit> {
    keel::lexicon::check::hits_for(lex, side, text, false)
}

pub fn fixtures() -> Vec<PathBuf> {
    keel::replay::jsonl_files(&root().join("fixtures/calls")).unwrap_or_default()
}

/// The recorded call whose file name starts with `number` ("06").
pub fn fixture(number: &str) -> PathBuf {
    fixtures()
        .into_iter()
        .find(|f| {
            f.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with(&format!("{number}-")))
        })
        .unwrap_or_else(|| panic!("no fixture {number}"))
}

/// A small deterministic generator for re-chunking.
pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    pub fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
    pub fn chance(&mut self, one_in: u64) -> bool {
        self.next() % one_in == 0
    }
}

/// A word of a digit run: re-chunking never cuts a card number or code in two (the
/// redactor sees one segment at a time).
pub fn digitish(w: &str) -> bool {
    w.bytes().any(|b| b.is_ascii_digit())
        || [
            "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "zero", "oh",
            "double", "triple",
        ]
        .contains(
            &w.trim_matches(|c: char| !c.is_alphabetic())
                .to_ascii_lowercase()
                .as_str(),
        )
}

/// A plain HTTP/1.1 request over a raw socket.
pub async fn http(
    addr: std::net::SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
) -> (u16, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    let extra: String = headers
        .iter()
        .map(|(k, v)| format!("{k}: {v}\r\n"))
        .collect();
    s.write_all(
        format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Length: 0\r\n{extra}Connection: close\r\n\r\n")
            .as_bytes(),
    )
    .await
    .unwrap();
    let mut buf = String::new();
    s.read_to_string(&mut buf).await.unwrap();
    let code = buf
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let body = buf.split("\r\n\r\n").nth(1).unwrap_or("").to_string();
    (code, body)
}
