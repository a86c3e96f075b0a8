//! keel's integration tests: one binary, so that CI links once.

mod it;
