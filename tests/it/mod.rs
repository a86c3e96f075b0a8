mod chunking;
mod cli;
mod coach;
mod lexicons;
mod matcher_table;
mod protocol_roundtrip;
mod redaction;
mod support;
