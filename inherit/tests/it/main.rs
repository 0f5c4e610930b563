//! Integration tests of tinyforge-inherit on CPU (float32): exactness of the extraction against
//! the teacher's own forward, transformers on the student, the real effect of inheriting from a
//! teacher trained on real text, and clear errors on bad input.

mod common;
mod errors;
mod exact;
mod reference;
mod trained;
