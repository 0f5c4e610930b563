//! The student's shape: what the user asks for (a model TOML or a built-in name), completed
//! and checked against the teacher. Everything that fixes the weights' meaning and cannot be
//! cut (head dim, RoPE θ, norm eps, biases) is the teacher's; every dimension that can be cut
//! must be at most the teacher's.

use tinyforge_model::{ModelConfig, ModelOptions};

use crate::error::{Error, Result};

/// The student config for `teacher`, `vocab_size` tokens (the compact tokenizer's, or the
/// teacher's without an id map).
pub fn resolve_student(
    teacher: &ModelConfig,
    opts: &ModelOptions,
    vocab_size: usize,
) -> Result<ModelConfig> {
    let bad = |m: String| Err(Error::Config(format!("student: {m}")));
    let need = |v: Option<usize>, field: &str| {
        v.ok_or_else(|| Error::Config(format!("student: the shape lacks `{field}`")))
    };
    let dim = need(opts.dim, "dim")?;
    let layers = need(opts.layers, "layers")?;
    let heads = need(opts.heads, "heads")?;
    let head_dim = opts.head_dim.unwrap_or(teacher.head_dim);
    if head_dim != teacher.head_dim {
        return bad(format!(
            "head_dim {head_dim} differs from the teacher's {}: whole heads are kept (cutting \
             inside a head breaks RoPE), so the student's head dim is the teacher's; set heads \
             to choose the attention width",
            teacher.head_dim
        ));
    }
    // Without kv_heads, keep the teacher's group size (query heads per key/value head).
    let kv_heads = match opts.kv_heads {
        Some(kv) => kv,
        None if heads.is_multiple_of(teacher.group_size()) => heads / teacher.group_size(),
        None => {
            return bad(format!(
                "heads {heads} is not a multiple of the teacher's {} query heads per key/value \
                 head; set kv_heads",
                teacher.group_size()
            ));
        }
    };
    if let Some(v) = opts.vocab_size
        && v != vocab_size
    {
        return bad(format!(
            "vocab_size {v}, but the vocabulary it inherits has {vocab_size} tokens (the id \
             map's, or the teacher's without one); leave vocab_size out"
        ));
    }
    for (field, given, teacher_value) in [
        ("rope_theta", opts.rope_theta, teacher.rope_theta),
        ("norm_eps", opts.norm_eps, teacher.norm_eps),
    ] {
        if let Some(g) = given
            && g != teacher_value
        {
            return bad(format!(
                "{field} {g} differs from the teacher's {teacher_value}; inherited weights \
                 only mean what they meant with the teacher's value"
            ));
        }
    }
    if let Some(bias) = opts.attention_bias
        && bias != teacher.attention_bias
    {
        return bad(format!(
            "attention_bias {bias:?} differs from the teacher's {:?}",
            teacher.attention_bias
        ));
    }
    let tied = opts.tied_embeddings.unwrap_or(teacher.tied_embeddings);
    if tied && !teacher.tied_embeddings {
        return bad(
            "tied_embeddings: the teacher's head is not its embedding; a tied \
                    student would drop one of them"
                .into(),
        );
    }
    let student = ModelConfig {
        name: opts.name.clone().unwrap_or_else(|| "inherited".into()),
        dim,
        layers,
        heads,
        kv_heads,
        head_dim,
        ffn_dim: opts
            .ffn_dim
            .unwrap_or_else(|| (dim * 8 / 3).div_ceil(256) * 256),
        vocab_size,
        max_seq_len: opts
            .max_seq_len
            .unwrap_or(teacher.max_seq_len)
            .min(teacher.max_seq_len),
        rope_theta: teacher.rope_theta,
        norm_eps: teacher.norm_eps,
        init_std: opts.init_std.unwrap_or(teacher.init_std),
        tied_embeddings: tied,
        attention_bias: teacher.attention_bias,
    };
    student.validate()?;
    for (field, s, t) in [
        ("dim", student.dim, teacher.dim),
        ("layers", student.layers, teacher.layers),
        ("heads", student.heads, teacher.heads),
        ("kv_heads", student.kv_heads, teacher.kv_heads),
        ("ffn_dim", student.ffn_dim, teacher.ffn_dim),
        ("vocab_size", student.vocab_size, teacher.vocab_size),
    ] {
        if s > t {
            return bad(format!(
                "{field} {s} is larger than the teacher's {t}: a student is cut from its \
                 teacher, never wider"
            ));
        }
    }
    if student.group_size() > teacher.group_size() {
        return bad(format!(
            "{} query heads per key/value head, the teacher has {}: query heads stay inside \
             their teacher's key/value group, so raise kv_heads to at least {}",
            student.group_size(),
            teacher.group_size(),
            student.heads.div_ceil(teacher.group_size())
        ));
    }
    if student.layers < 2 && teacher.layers >= 2 {
        return bad(
            "layers must be at least 2: the first and the last layer are always kept \
                    (paper Fig. 5)"
                .into(),
        );
    }
    Ok(student)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn teacher() -> ModelConfig {
        ModelOptions {
            dim: Some(128),
            layers: Some(6),
            heads: Some(8),
            kv_heads: Some(4),
            ffn_dim: Some(256),
            ..ModelOptions::load("tiny").unwrap()
        }
        .resolve(Some(300))
        .unwrap()
    }

    fn student(f: impl FnOnce(&mut ModelOptions)) -> Result<ModelConfig> {
        let mut o = ModelOptions {
            dim: Some(64),
            layers: Some(3),
            heads: Some(4),
            ffn_dim: Some(128),
            ..Default::default()
        };
        f(&mut o);
        resolve_student(&teacher(), &o, 200)
    }

    #[test]
    fn completes_from_the_teacher_and_refuses_what_cannot_be_cut() {
        let s = student(|_| {}).unwrap();
        assert_eq!((s.kv_heads, s.head_dim, s.vocab_size), (2, 16, 200));
        let err = |f: fn(&mut ModelOptions)| student(f).unwrap_err().to_string();
        assert!(err(|o| o.dim = Some(256)).contains("dim 256 is larger"));
        assert!(err(|o| o.ffn_dim = Some(512)).contains("ffn_dim 512"));
        assert!(err(|o| o.layers = Some(7)).contains("layers 7"));
        assert!(err(|o| o.head_dim = Some(32)).contains("head_dim 32 differs"));
        assert!(err(|o| o.kv_heads = Some(1)).contains("raise kv_heads to at least 2"));
        assert!(err(|o| o.vocab_size = Some(300)).contains("vocab_size 300"));
        assert!(err(|o| o.norm_eps = Some(1e-3)).contains("norm_eps"));
        assert!(err(|o| o.tied_embeddings = Some(true)).contains("tied"));
        assert!(err(|o| o.layers = Some(1)).contains("at least 2"));
    }
}
