//! The Hugging Face tensor names of a model and what each tensor is, in one canonical order:
//! the embedding; per layer the input norm, q, k, v (then their biases), o (then its bias), the
//! post-attention norm, gate, up, down; the final norm; the LM head unless it is tied. q, k, v
//! are adjacent (and so are their biases, and gate and up), so a trainer that lays the tensors
//! out in this order can run one fused matmul for each group.

use crate::config::ModelConfig;

/// What a tensor is, for the code that reads, trains or prunes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Role {
    Embed,
    InputNorm,
    Q,
    K,
    V,
    QBias,
    KBias,
    VBias,
    O,
    OBias,
    PostNorm,
    Gate,
    Up,
    Down,
    FinalNorm,
    Head,
}

impl Role {
    /// AdamW weight decay applies to matrices, not to norm weights or biases.
    pub fn decays(self) -> bool {
        !matches!(
            self,
            Role::InputNorm
                | Role::PostNorm
                | Role::FinalNorm
                | Role::QBias
                | Role::KBias
                | Role::VBias
                | Role::OBias
        )
    }

    /// A vector that starts at one (RMSNorm weights); biases start at zero, matrices random.
    pub fn is_norm(self) -> bool {
        matches!(self, Role::InputNorm | Role::PostNorm | Role::FinalNorm)
    }

    pub fn is_bias(self) -> bool {
        matches!(self, Role::QBias | Role::KBias | Role::VBias | Role::OBias)
    }
}

/// One tensor of the model.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TensorSpec {
    /// Hugging Face name, e.g. `model.layers.3.self_attn.q_proj.weight`.
    pub name: String,
    pub shape: Vec<usize>,
    pub role: Role,
    /// The decoder layer, for per-layer tensors.
    pub layer: Option<usize>,
}

impl TensorSpec {
    pub fn numel(&self) -> usize {
        self.shape.iter().product()
    }
}

/// Every tensor of `cfg`, in the canonical order above.
pub fn tensor_specs(cfg: &ModelConfig) -> Vec<TensorSpec> {
    let (d, f, v) = (cfg.dim, cfg.ffn_dim, cfg.vocab_size);
    let (q, kv) = (cfg.q_dim(), cfg.kv_dim());
    let mut specs = Vec::with_capacity(3 + 13 * cfg.layers);
    let mut push = |name: String, shape: Vec<usize>, role: Role, layer: Option<usize>| {
        specs.push(TensorSpec {
            name,
            shape,
            role,
            layer,
        })
    };
    push(
        "model.embed_tokens.weight".into(),
        vec![v, d],
        Role::Embed,
        None,
    );
    for i in 0..cfg.layers {
        let p = format!("model.layers.{i}");
        let l = Some(i);
        push(
            format!("{p}.input_layernorm.weight"),
            vec![d],
            Role::InputNorm,
            l,
        );
        push(
            format!("{p}.self_attn.q_proj.weight"),
            vec![q, d],
            Role::Q,
            l,
        );
        push(
            format!("{p}.self_attn.k_proj.weight"),
            vec![kv, d],
            Role::K,
            l,
        );
        push(
            format!("{p}.self_attn.v_proj.weight"),
            vec![kv, d],
            Role::V,
            l,
        );
        if cfg.attention_bias.qkv() {
            push(
                format!("{p}.self_attn.q_proj.bias"),
                vec![q],
                Role::QBias,
                l,
            );
            push(
                format!("{p}.self_attn.k_proj.bias"),
                vec![kv],
                Role::KBias,
                l,
            );
            push(
                format!("{p}.self_attn.v_proj.bias"),
                vec![kv],
                Role::VBias,
                l,
            );
        }
        push(
            format!("{p}.self_attn.o_proj.weight"),
            vec![d, q],
            Role::O,
            l,
        );
        if cfg.attention_bias.o() {
            push(
                format!("{p}.self_attn.o_proj.bias"),
                vec![d],
                Role::OBias,
                l,
            );
        }
        push(
            format!("{p}.post_attention_layernorm.weight"),
            vec![d],
            Role::PostNorm,
            l,
        );
        push(
            format!("{p}.mlp.gate_proj.weight"),
            vec![f, d],
            Role::Gate,
            l,
        );
        push(format!("{p}.mlp.up_proj.weight"), vec![f, d], Role::Up, l);
        push(
            format!("{p}.mlp.down_proj.weight"),
            vec![d, f],
            Role::Down,
            l,
        );
    }
    push("model.norm.weight".into(), vec![d], Role::FinalNorm, None);
    if !cfg.tied_embeddings {
        push("lm_head.weight".into(), vec![v, d], Role::Head, None);
    }
    specs
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn specs_add_up_to_the_parameter_count() {
        for cfg in crate::config::test_layouts() {
            let tied = cfg.tied_embeddings;
            let specs = tensor_specs(&cfg);
            let total: usize = specs.iter().map(TensorSpec::numel).sum();
            assert_eq!(total as u64, cfg.param_count());
            assert_eq!(specs.iter().any(|s| s.role == Role::Head), !tied);
        }
    }
}
