//! `--shard`: which part of a stage's work one batch task does.
//!
//! One type for every stage; what a "part" is stays the stage's own, documented with its flag:
//! ingest and vocab count take every n-th unit ([`Shard::owns`], so tasks get a similar mix of
//! inputs), tokenize takes a contiguous run ([`Shard::range`], so task outputs concatenated in
//! task order are the single run's stream).

use std::fmt;
use std::ops::Range;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// Task `index` of `count` (0-based). The default, `0/1`, is the whole input.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Shard {
    pub index: u32,
    pub count: u32,
}

impl Default for Shard {
    fn default() -> Self {
        Self::ALL
    }
}

/// A `--shard` value that is not a task, or an environment that names none.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ShardError {
    #[error("shard {0:?} is not i/n with 0 <= i < n (for example 0/4), auto, or auto/n")]
    Syntax(String),
    #[error(
        "--shard auto: no array index in the environment (SLURM_ARRAY_TASK_ID, \
         JOB_COMPLETION_INDEX, AWS_BATCH_JOB_ARRAY_INDEX); run it as an array task or give --shard i/n"
    )]
    NoArray,
    #[error(
        "--shard auto: {variable} gives the task index but nothing gives the task count; \
         give it as --shard auto/N (N = the job's completions or array size)"
    )]
    NoCount { variable: &'static str },
    #[error("--shard auto: {variable}={value:?} is not a task index")]
    BadVariable {
        variable: &'static str,
        value: String,
    },
    #[error("--shard auto: {0}")]
    Array(String),
}

impl Shard {
    /// The whole input: one task.
    pub const ALL: Shard = Shard { index: 0, count: 1 };

    pub fn new(index: u32, count: u32) -> Result<Self, ShardError> {
        if count == 0 || index >= count {
            return Err(ShardError::Syntax(format!("{index}/{count}")));
        }
        Ok(Self { index, count })
    }

    /// Whether the task is the whole input.
    pub fn is_all(&self) -> bool {
        self.count == 1
    }

    /// Round-robin: whether unit number `unit` belongs to this task. Keeps tasks balanced when
    /// units (files, chunks, row groups) differ in size and come sorted by source.
    pub fn owns(&self, unit: usize) -> bool {
        unit % self.count as usize == self.index as usize
    }

    /// Contiguous: this task's part of `0..len`, as even as integers allow. The tasks' ranges
    /// in index order tile `0..len` exactly.
    pub fn range(&self, len: u64) -> Range<u64> {
        let at = |i: u32| (len as u128 * i as u128 / self.count as u128) as u64;
        at(self.index)..at(self.index + 1)
    }
}

impl fmt::Display for Shard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.index, self.count)
    }
}

impl FromStr for Shard {
    type Err = ShardError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let bad = || ShardError::Syntax(text.to_owned());
        let (i, n) = text.split_once('/').ok_or_else(bad)?;
        let index: u32 = i.trim().parse().map_err(|_| bad())?;
        let count: u32 = n.trim().parse().map_err(|_| bad())?;
        Shard::new(index, count).map_err(|_| bad())
    }
}

/// What `--shard` says: a task, or `auto` (the array index the scheduler gives, with the count
/// from the scheduler or after the slash).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ShardSpec {
    Task(Shard),
    Auto { count: Option<u32> },
}

impl Default for ShardSpec {
    fn default() -> Self {
        Self::Task(Shard::ALL)
    }
}

impl From<Shard> for ShardSpec {
    fn from(shard: Shard) -> Self {
        Self::Task(shard)
    }
}

impl ShardSpec {
    /// The task, reading the process environment for `auto`.
    pub fn resolve(&self) -> Result<Shard, ShardError> {
        self.resolve_with(|name| std::env::var(name).ok())
    }

    /// The task, with `env` standing in for the process environment. `auto` looks, in order, at:
    /// - Slurm arrays: `SLURM_ARRAY_TASK_ID` less `SLURM_ARRAY_TASK_MIN`, of
    ///   `SLURM_ARRAY_TASK_COUNT` (the array must be one step, no gaps: `--array=0-7`, `1-8`);
    /// - Kubernetes Indexed Jobs: `JOB_COMPLETION_INDEX`, count after the slash (`auto/8`);
    /// - AWS Batch arrays: `AWS_BATCH_JOB_ARRAY_INDEX`, count after the slash.
    pub fn resolve_with(&self, env: impl Fn(&str) -> Option<String>) -> Result<Shard, ShardError> {
        let given = match *self {
            ShardSpec::Task(shard) => return Ok(shard),
            ShardSpec::Auto { count } => count,
        };
        let number = |variable: &'static str| -> Result<Option<u32>, ShardError> {
            match env(variable) {
                None => Ok(None),
                Some(value) => value
                    .trim()
                    .parse()
                    .map(Some)
                    .map_err(|_| ShardError::BadVariable { variable, value }),
            }
        };
        if let Some(id) = number("SLURM_ARRAY_TASK_ID")? {
            let min = number("SLURM_ARRAY_TASK_MIN")?.unwrap_or(0);
            let step = number("SLURM_ARRAY_TASK_STEP")?.unwrap_or(1);
            let count = number("SLURM_ARRAY_TASK_COUNT")?
                .or(given)
                .ok_or(ShardError::NoCount {
                    variable: "SLURM_ARRAY_TASK_ID",
                })?;
            if step != 1 {
                return Err(ShardError::Array(format!(
                    "the Slurm array steps by {step}; tasks need consecutive ids (--array=0-{})",
                    count.saturating_sub(1)
                )));
            }
            if let Some(max) = number("SLURM_ARRAY_TASK_MAX")?
                && max.checked_sub(min).map(|span| span + 1) != Some(count)
            {
                return Err(ShardError::Array(format!(
                    "the Slurm array has {count} tasks between ids {min} and {max}; tasks need \
                     consecutive ids (--array={min}-{})",
                    min + count.saturating_sub(1)
                )));
            }
            if let Some(given) = given
                && given != count
            {
                return Err(ShardError::Array(format!(
                    "--shard auto/{given} but the Slurm array has {count} tasks"
                )));
            }
            let index = id.checked_sub(min).ok_or_else(|| {
                ShardError::Array(format!(
                    "SLURM_ARRAY_TASK_ID {id} is below SLURM_ARRAY_TASK_MIN {min}"
                ))
            })?;
            return Shard::new(index, count).map_err(|_| {
                ShardError::Array(format!("task id {id} outside an array of {count}"))
            });
        }
        for variable in ["JOB_COMPLETION_INDEX", "AWS_BATCH_JOB_ARRAY_INDEX"] {
            if let Some(index) = number(variable)? {
                let count = given.ok_or(ShardError::NoCount { variable })?;
                return Shard::new(index, count).map_err(|_| {
                    ShardError::Array(format!("{variable}={index} is not below the count {count}"))
                });
            }
        }
        Err(ShardError::NoArray)
    }
}

impl fmt::Display for ShardSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ShardSpec::Task(shard) => shard.fmt(f),
            ShardSpec::Auto { count: None } => f.write_str("auto"),
            ShardSpec::Auto { count: Some(n) } => write!(f, "auto/{n}"),
        }
    }
}

impl FromStr for ShardSpec {
    type Err = ShardError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let trimmed = text.trim();
        if trimmed == "auto" {
            return Ok(ShardSpec::Auto { count: None });
        }
        if let Some(n) = trimmed.strip_prefix("auto/") {
            return match n.trim().parse::<u32>() {
                Ok(count) if count > 0 => Ok(ShardSpec::Auto { count: Some(count) }),
                _ => Err(ShardError::Syntax(text.to_owned())),
            };
        }
        text.parse().map(ShardSpec::Task)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env<'a>(vars: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<String> + 'a {
        move |name| {
            vars.iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| v.to_string())
        }
    }

    #[test]
    fn parses_and_prints() {
        let shard: Shard = "2/4".parse().unwrap();
        assert_eq!(shard, Shard { index: 2, count: 4 });
        assert_eq!(shard.to_string(), "2/4");
        for bad in ["4/4", "1/0", "x", "1/", "-1/4"] {
            assert!(bad.parse::<Shard>().is_err(), "{bad}");
        }
        assert_eq!(
            "auto".parse::<ShardSpec>().unwrap(),
            ShardSpec::Auto { count: None }
        );
        assert_eq!("auto/8".parse::<ShardSpec>().unwrap().to_string(), "auto/8");
        assert!("auto/0".parse::<ShardSpec>().is_err());
        assert_eq!("1/3".parse::<ShardSpec>().unwrap().to_string(), "1/3");
    }

    #[test]
    fn round_robin_and_ranges_partition() {
        for count in 1..6u32 {
            for unit in 0..20 {
                let owners = (0..count)
                    .filter(|&index| Shard { index, count }.owns(unit))
                    .count();
                assert_eq!(owners, 1);
            }
            for len in [0u64, 1, 7, 100] {
                let mut next = 0;
                for index in 0..count {
                    let range = Shard { index, count }.range(len);
                    assert_eq!(range.start, next);
                    next = range.end;
                }
                assert_eq!(next, len);
            }
        }
    }

    #[test]
    fn auto_reads_the_schedulers() {
        let auto = ShardSpec::Auto { count: None };
        let slurm = [
            ("SLURM_ARRAY_TASK_ID", "5"),
            ("SLURM_ARRAY_TASK_MIN", "1"),
            ("SLURM_ARRAY_TASK_MAX", "8"),
            ("SLURM_ARRAY_TASK_COUNT", "8"),
        ];
        assert_eq!(
            auto.resolve_with(env(&slurm)).unwrap(),
            Shard { index: 4, count: 8 }
        );
        let gaps = [
            ("SLURM_ARRAY_TASK_ID", "5"),
            ("SLURM_ARRAY_TASK_MIN", "0"),
            ("SLURM_ARRAY_TASK_MAX", "9"),
            ("SLURM_ARRAY_TASK_COUNT", "3"),
        ];
        let err = auto.resolve_with(env(&gaps)).unwrap_err().to_string();
        assert!(err.contains("consecutive ids"), "{err}");
        let k8s = [("JOB_COMPLETION_INDEX", "3")];
        assert!(matches!(
            auto.resolve_with(env(&k8s)),
            Err(ShardError::NoCount {
                variable: "JOB_COMPLETION_INDEX"
            })
        ));
        let sized = ShardSpec::Auto { count: Some(4) };
        assert_eq!(
            sized.resolve_with(env(&k8s)).unwrap(),
            Shard { index: 3, count: 4 }
        );
        let too_far = ShardSpec::Auto { count: Some(3) };
        assert!(too_far.resolve_with(env(&k8s)).is_err());
        let batch = [("AWS_BATCH_JOB_ARRAY_INDEX", "0")];
        assert_eq!(
            sized.resolve_with(env(&batch)).unwrap(),
            Shard { index: 0, count: 4 }
        );
        assert!(matches!(
            auto.resolve_with(env(&[])),
            Err(ShardError::NoArray)
        ));
        let garbage = [("SLURM_ARRAY_TASK_ID", "x")];
        assert!(matches!(
            auto.resolve_with(env(&garbage)),
            Err(ShardError::BadVariable { .. })
        ));
        let fixed = ShardSpec::Task(Shard { index: 1, count: 2 });
        assert_eq!(
            fixed.resolve_with(env(&slurm)).unwrap(),
            Shard { index: 1, count: 2 }
        );
    }
}
