//! Integration tests of tinyforge-vocab on the committed real-text fixtures
//! (`tests/fixtures/make_fixtures.py` made them).

mod common;
mod counting;
mod pruning;
mod python;
mod qwen3;
