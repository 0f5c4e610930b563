//! Perplexity and zero-shot multiple-choice evaluation
