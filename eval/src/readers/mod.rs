//! One reader per benchmark file format, each mapping records to [`McItem`](crate::McItem)s.

mod arrow_table;
mod c3;
mod cmmlu;
mod hf;
mod json_array;
mod jsonl;
mod olmo;

pub use c3::read_c3;
pub use cmmlu::{read_cmmlu, read_cmmlu_dir};
pub use hf::{
    hellaswag_preprocess, read_arc, read_boolq, read_hellaswag, read_mmlu, read_piqa,
    read_winogrande,
};
pub use jsonl::read_jsonl;
pub use olmo::read_olmo_requests;
