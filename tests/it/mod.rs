mod chunking;
mod cli;
mod lexicons;
mod matcher_table;
mod protocol_roundtrip;
mod redaction;
mod support;
