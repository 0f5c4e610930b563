//! Integration tests of tinyforge-train on CPU (float32), with the tiny config.

mod common;
mod dist;
mod hf_reference;
mod pipeline;
mod rounds;
mod training;
