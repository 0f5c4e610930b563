//! Count base-tokenizer token frequencies and prune the vocabulary into a compact tokenizer
