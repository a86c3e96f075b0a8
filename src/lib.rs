//! keel — a real-time de-escalation coach for contact-center agents.
//!
//! Data flows one way; each module is one stage:
//!
//! ```text
//! platform frame ──> protocol (native event) ──> text (redact, normalise) ──> matcher (hits)
//!                                                         ▲
//!                                      lexicon (files -> compiled automaton)
//! ```
//!
//! - [`protocol`]: the wire messages of `protocol.md` and their decoding, with errors
//!   that name the field.
//! - [`adapters`]: speech engines' live transcript messages mapped to native events.
//! - [`text`]: PCI redaction of every text, then normalisation to canonical words.
//! - [`lexicon`]: the reviewable lexicon files, their loader (`file:line: reason`
//!   errors), the compiled automaton and the example checks.
//! - [`matcher`]: per-call, per-speaker streaming matching with small carried state.
//! - [`coach`]: one session per call: hits and timing to nudges, the boundary counter and
//!   the call record.
//! - [`replay`]: reading recorded calls (native JSON Lines) and running them offline;
//!   [`archive`]: calls archived as SegLST or NIST STM, read as native events.
//!
//! The engine is pure: no I/O, no clock, no async. Time comes from the transcript.

#![forbid(unsafe_code)]

pub mod adapters;
pub mod archive;
pub mod coach;
pub mod lexicon;
pub mod matcher;
pub mod protocol;
pub mod replay;
pub mod server;
pub mod text;
