//! Two rounds: train on everything, score every unit with the frozen model, keep the hardest
//! half of the batches, train on them, resuming from the first round's last checkpoint.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use tinyforge_train::{
    Callbacks, ListPlan, Model, NoCallbacks, Planner, Result, RoundPlan, UnitSource,
    read_loss_table, score_plan, train_with,
};

use crate::common::*;

/// Round 0: the given batches. Round 1: scores round 0's batches with the model it is handed,
/// keeps the half with the highest mean loss (a stand-in for the sampler's softmax draw), in
/// their original order. The score table is written once and reused when asked again.
struct ScoreThenSelect {
    first: Vec<Vec<u64>>,
    data: Arc<dyn UnitSource>,
    table: std::path::PathBuf,
    scored: usize,
}

impl Planner for ScoreThenSelect {
    fn rounds(&self) -> usize {
        2
    }
    fn plan(
        &mut self,
        round: usize,
        model: &Model,
        _e: &mut dyn Callbacks,
    ) -> Result<Arc<dyn RoundPlan>> {
        if round == 0 {
            return Ok(Arc::new(ListPlan(self.first.clone())));
        }
        if !self.table.exists() {
            self.scored += 1;
            score_plan(
                &tinyforge_train::dist::World::single(),
                model,
                self.data.clone(),
                Arc::new(ListPlan(self.first.clone())),
                32,
                8,
                None,
                1,
                &self.table,
                &tinyforge_task::Silent,
            )?;
        }
        let losses: BTreeMap<u64, f32> = read_loss_table(&self.table)?.into_iter().collect();
        let mut scored: Vec<(f32, usize)> = self
            .first
            .iter()
            .enumerate()
            .map(|(i, b)| (b.iter().map(|u| losses[u]).sum::<f32>() / b.len() as f32, i))
            .collect();
        scored.sort_by(|a, b| b.0.total_cmp(&a.0));
        let mut keep: Vec<usize> = scored[..self.first.len() / 2].iter().map(|x| x.1).collect();
        keep.sort();
        Ok(Arc::new(ListPlan(
            keep.into_iter().map(|i| self.first[i].clone()).collect(),
        )))
    }
}

#[test]
fn two_rounds_consume_the_selected_plan_and_resume_mid_round() {
    let data = corpus();
    let tmp = tempfile::tempdir().unwrap();
    let mut cfg = loop_config(tmp.path());
    cfg.checkpoint_every = 5;
    let n = train_units(data.as_ref(), cfg.seq_len, 16);
    let first = shuffled_batches(n, 8, 9)[..40].to_vec();
    let mut planner = ScoreThenSelect {
        first: first.clone(),
        data: data.clone(),
        table: tmp.path().join("losses/score-round-1.parquet"),
        scored: 0,
    };
    // Stop in the middle of round 2, then resume: the plan must be the same.
    cfg.max_steps = Some(47);
    let r1 = train_with(&cfg, data.clone(), &mut planner, None, &mut NoCallbacks).unwrap();
    assert!(!r1.complete && r1.steps == 47);
    cfg.max_steps = None;
    let r2 = train_with(&cfg, data.clone(), &mut planner, None, &mut NoCallbacks).unwrap();
    assert!(r2.complete);
    assert_eq!(r2.steps, 60);
    assert_eq!(planner.scored, 1, "the frozen model scored the data once");

    // The score table holds every unit of round 1 once.
    let scores = read_loss_table(&planner.table).unwrap();
    let all: BTreeSet<u64> = first.iter().flatten().copied().collect();
    assert_eq!(scores.len(), all.len());
    assert_eq!(scores.iter().map(|x| x.0).collect::<BTreeSet<_>>(), all);
    // Round 2 trained exactly the selected units, each once (also across the stop).
    let selected = planner
        .plan(
            1,
            &Model::zeros(&cfg.model, tch::Device::Cpu, tch::Kind::Float).unwrap(),
            &mut NoCallbacks,
        )
        .unwrap();
    let mut want: Vec<u64> = (0..selected.steps())
        .flat_map(|s| selected.batch(s).unwrap())
        .collect();
    let mut got: Vec<u64> = read_loss_table(&cfg.train_losses_dir(1))
        .unwrap()
        .into_iter()
        .map(|x| x.0)
        .collect();
    want.sort();
    got.sort();
    assert_eq!(got, want);
    assert_eq!(
        read_loss_table(&cfg.train_losses_dir(0)).unwrap().len(),
        all.len()
    );
}
