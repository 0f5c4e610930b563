//! End-to-end tests that drive the real `tinyforge` binary, one module per stage. They are one
//! test binary, not one per file: each links the whole dependency graph (DataFusion, libtorch),
//! and linking eight of them was minutes of every CI run.

mod cluster;
mod depcheck;
mod dist;
mod eval;
mod ingest;
mod inherit;
mod objects;
mod sampler;
mod stats;
mod tokenize;
mod train;
mod vocab;
