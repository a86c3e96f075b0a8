//! Text handling before matching: PCI redaction ([`redact`]) and normalisation
//! ([`normalize`]). Redaction runs first, on the raw segment text, so that nothing
//! downstream — matcher, evidence quotes, logs, records — ever holds card data.

pub mod normalize;
pub mod redact;

pub use normalize::{NormState, Normalizer, StringSink, TokenSink, Vocab};
pub use redact::{redact, RedactState, Role};
