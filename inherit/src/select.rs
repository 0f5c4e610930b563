//! From scores to the index sets the student keeps (INHERIT.md, "The index sets"): exactly the
//! requested counts, sorted, so keeping everything is the identity.

use serde::Serialize;
use tch::{Kind, Tensor};
use tinyforge_model::ModelConfig;

use crate::error::{Error, Result};
use crate::scores::UnitScores;

/// How the student's layers are chosen from the teacher's.
#[derive(Debug, Clone, PartialEq)]
pub enum Depth {
    /// The first, the last, and the rest evenly spaced between them.
    Uniform,
    /// The first, the last, and the middle layers of highest block importance
    /// (1 − cos(x_in, x_out) on the calibration data: ShortGPT, Minitron).
    Block,
    /// Exactly these teacher layers (0-based).
    List(Vec<usize>),
}

impl std::str::FromStr for Depth {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "uniform" => Ok(Depth::Uniform),
            "block" => Ok(Depth::Block),
            list => list
                .split(',')
                .map(|x| x.trim().parse::<usize>())
                .collect::<std::result::Result<Vec<_>, _>>()
                .map(Depth::List)
                .map_err(|_| {
                    Error::Config(format!(
                        "layers `{s}`: expected uniform, block, or a comma-separated list of \
                         teacher layers such as 0,1,5,11"
                    ))
                }),
        }
    }
}

/// The `k` best of `scores` (ties: lower index first), in increasing index order.
pub fn top_k(scores: &[f64], k: usize) -> Vec<i64> {
    let mut order: Vec<usize> = (0..scores.len()).collect();
    order.sort_by(|&a, &b| scores[b].total_cmp(&scores[a]).then(a.cmp(&b)));
    let mut kept: Vec<i64> = order.into_iter().take(k).map(|i| i as i64).collect();
    kept.sort_unstable();
    kept
}

/// The teacher layers the student keeps: always the first and the last (paper Fig. 5).
pub fn select_layers(depth: &Depth, importance: &[f64], keep: usize) -> Result<Vec<usize>> {
    let total = importance.len();
    if keep > total || keep == 0 {
        return Err(Error::Config(format!(
            "cannot keep {keep} of the teacher's {total} layers"
        )));
    }
    if keep == total {
        return Ok((0..total).collect());
    }
    let layers = match depth {
        Depth::Uniform if keep == 1 => vec![0],
        Depth::Uniform => (0..keep)
            .map(|i| (i * (total - 1) + (keep - 1) / 2) / (keep - 1))
            .collect(),
        Depth::Block => {
            let middle = &importance[1..total - 1];
            let mut layers: Vec<usize> = top_k(middle, keep.saturating_sub(2))
                .into_iter()
                .map(|i| i as usize + 1)
                .collect();
            layers.insert(0, 0);
            layers.push(total - 1);
            layers
        }
        Depth::List(list) => {
            let mut sorted = list.clone();
            sorted.sort_unstable();
            sorted.dedup();
            if sorted.len() != keep || sorted.iter().any(|&l| l >= total) {
                return Err(Error::Config(format!(
                    "layers {list:?}: the student has {keep} layers, so name {keep} distinct \
                     teacher layers in 0..{total}"
                )));
            }
            sorted
        }
    };
    debug_assert_eq!(layers.len(), keep);
    Ok(layers)
}

/// What the student keeps of each (depth-selected) teacher layer and of the residual stream.
#[derive(Debug, Clone, Serialize)]
pub struct Width {
    pub hidden: Vec<i64>,
    /// Per layer: the query heads kept, grouped by their key/value head.
    pub heads: Vec<Vec<i64>>,
    /// Per layer: the key/value heads kept.
    pub kv_heads: Vec<Vec<i64>>,
    pub neurons: Vec<Vec<i64>>,
}

impl Width {
    /// Everything of `cfg`: the identity selection.
    pub fn all(cfg: &ModelConfig) -> Self {
        let range = |n: usize| (0..n as i64).collect::<Vec<_>>();
        Width {
            hidden: range(cfg.dim),
            heads: vec![range(cfg.heads); cfg.layers],
            kv_heads: vec![range(cfg.kv_heads); cfg.layers],
            neurons: vec![range(cfg.ffn_dim); cfg.layers],
        }
    }
}

fn to_vec(t: &Tensor) -> Vec<f64> {
    Vec::<f64>::try_from(t.to_kind(Kind::Double).reshape([-1])).expect("f64 scores")
}

/// Pick the student's units from `scores` of `teacher` (already cut to the student's depth).
/// Key/value groups: each group keeps its best `student.group_size()` query heads; a group's
/// score is its key/value heads' plus those query heads'; the best `student.kv_heads` groups
/// stay (Minitron keeps every group the same size).
pub fn select_width(scores: &UnitScores, teacher: &ModelConfig, student: &ModelConfig) -> Width {
    let (tg, sg) = (teacher.group_size(), student.group_size());
    let mut heads = Vec::with_capacity(teacher.layers);
    let mut kv_heads = Vec::with_capacity(teacher.layers);
    let mut neurons = Vec::with_capacity(teacher.layers);
    for l in 0..teacher.layers as i64 {
        let q = to_vec(&scores.heads.get(l));
        let kv = to_vec(&scores.kv.get(l));
        let mut members = Vec::with_capacity(teacher.kv_heads);
        let mut group_scores = Vec::with_capacity(teacher.kv_heads);
        for (g, kv_score) in kv.iter().enumerate() {
            let own = &q[g * tg..(g + 1) * tg];
            let best = top_k(own, sg);
            group_scores.push(kv_score + best.iter().map(|&i| own[i as usize]).sum::<f64>());
            members.push(
                best.into_iter()
                    .map(|i| i + (g * tg) as i64)
                    .collect::<Vec<_>>(),
            );
        }
        let groups = top_k(&group_scores, student.kv_heads);
        heads.push(
            groups
                .iter()
                .flat_map(|&g| members[g as usize].clone())
                .collect(),
        );
        kv_heads.push(groups);
        neurons.push(top_k(&to_vec(&scores.neurons.get(l)), student.ffn_dim));
    }
    Width {
        hidden: top_k(&to_vec(&scores.hidden), student.dim),
        heads,
        kv_heads,
        neurons,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layers_keep_the_ends() {
        let imp = [0.9, 0.1, 0.5, 0.2, 0.4, 0.8];
        assert_eq!(
            select_layers(&Depth::Uniform, &imp, 3).unwrap(),
            vec![0, 3, 5]
        );
        assert_eq!(select_layers(&Depth::Uniform, &imp, 2).unwrap(), vec![0, 5]);
        assert_eq!(
            select_layers(&Depth::Uniform, &imp, 6).unwrap(),
            vec![0, 1, 2, 3, 4, 5]
        );
        assert_eq!(
            select_layers(&Depth::Block, &imp, 4).unwrap(),
            vec![0, 2, 4, 5]
        );
        let list: Depth = "5,0,2".parse().unwrap();
        assert_eq!(select_layers(&list, &imp, 3).unwrap(), vec![0, 2, 5]);
        assert!(select_layers(&list, &imp, 4).is_err());
        assert!("0,x".parse::<Depth>().is_err());
    }

    #[test]
    fn top_k_is_sorted_and_stable() {
        assert_eq!(top_k(&[1.0, 3.0, 3.0, 0.5], 2), vec![1, 2]);
        assert_eq!(top_k(&[1.0, 3.0, 3.0, 0.5], 4), vec![0, 1, 2, 3]);
        assert_eq!(top_k(&[2.0, 2.0, 2.0], 1), vec![0]);
    }
}
