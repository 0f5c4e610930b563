//! Parameter arithmetic of an untied LLaMA/SwiGLU decoder, for the paper's rule of thumb: the
//! compact vocabulary should cover more than 90% of the corpus while embedding + head stay
//! below 20% of the parameters.

/// The shape of the model the vocabulary is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct ModelShape {
    pub dim: u64,
    pub layers: u64,
    pub ffn: u64,
}

/// Named shapes from the paper (FFN = 8/3 of the width rounded up to a multiple of 256, as
/// InternEvo does).
pub const PRESETS: &[(&str, ModelShape)] = &[
    (
        "pangu-1b",
        ModelShape {
            dim: 2048,
            layers: 12,
            ffn: 5632,
        },
    ),
    (
        "pangu-1b-pro",
        ModelShape {
            dim: 1792,
            layers: 20,
            ffn: 4864,
        },
    ),
    (
        "pangu-1.5b-pro",
        ModelShape {
            dim: 2048,
            layers: 22,
            ffn: 5632,
        },
    ),
];

impl ModelShape {
    /// A preset by name, or `None` (the error lists `PRESETS`).
    pub fn preset(name: &str) -> Option<Self> {
        PRESETS.iter().find(|(n, _)| *n == name).map(|(_, s)| *s)
    }

    /// Embedding and LM head: two untied `vocab x dim` matrices.
    pub fn embedding_head_params(&self, vocab: u64) -> u64 {
        2 * vocab * self.dim
    }

    /// Total parameters: `V*D*2 + L*(4*D*D + 3*D*F + 2*D) + D` (attention q/k/v/o, SwiGLU
    /// gate/up/down, two RMSNorm weights per layer, the final norm).
    pub fn total_params(&self, vocab: u64) -> u64 {
        let (d, l, f) = (self.dim, self.layers, self.ffn);
        self.embedding_head_params(vocab) + l * (4 * d * d + 3 * d * f + 2 * d) + d
    }

    /// Share of embedding + head in the total, in [0, 1].
    pub fn embedding_head_share(&self, vocab: u64) -> f64 {
        self.embedding_head_params(vocab) as f64 / self.total_params(vocab) as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // paper.md §3: V=48,000 with 1792 x 20 layers x FFN 4864 is 18.07% and 0.952B; the 100k
    // baseline (100,864) at 15 layers is 38.19% and 0.946B.
    #[test]
    fn matches_the_papers_arithmetic() {
        let pro = ModelShape::preset("pangu-1b-pro").unwrap();
        assert_eq!(pro.total_params(48_000), 951_983_872);
        assert_eq!(
            format!("{:.2}", 100.0 * pro.embedding_head_share(48_000)),
            "18.07"
        );
        let sweep = ModelShape { layers: 15, ..pro };
        assert_eq!(
            format!("{:.2}", 100.0 * sweep.embedding_head_share(100_864)),
            "38.19"
        );
        assert_eq!(sweep.total_params(100_864) / 1_000_000, 946);
    }
}
