//! Who a process is in a training job: explicit flags, torchrun's variables, Slurm's.

use crate::error::{Error, Result};

/// Who this process is in a training job, and where its rendezvous store is.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Launch {
    pub rank: usize,
    pub world: usize,
    pub local_rank: usize,
    pub local_world: usize,
    pub master_addr: String,
    pub master_port: u16,
    /// torchrun's agent (or `tinyforge train --nproc`) already serves the store: every rank is
    /// a client, under `/worker/attempt_{restart}`.
    pub agent_store: bool,
    pub restart: u64,
    /// Where the values came from: `single`, `flags`, `torchrun`, `slurm`.
    pub source: String,
}

/// Explicit launch flags (`--rank`, `--world-size`, …); each wins over the environment.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct LaunchFlags {
    pub rank: Option<usize>,
    pub world_size: Option<usize>,
    pub local_rank: Option<usize>,
    pub master_addr: Option<String>,
    pub master_port: Option<u16>,
}

impl Launch {
    /// A world of one (no store, no group).
    pub fn single() -> Self {
        Self {
            rank: 0,
            world: 1,
            local_rank: 0,
            local_world: 1,
            master_addr: "127.0.0.1".into(),
            master_port: 0,
            agent_store: false,
            restart: 0,
            source: "single".into(),
        }
    }

    /// Resolve from `flags`, then torchrun's variables (`RANK`, `WORLD_SIZE`, `LOCAL_RANK`,
    /// `MASTER_ADDR`, `MASTER_PORT`, …), then Slurm's (`SLURM_PROCID`, `SLURM_NTASKS`,
    /// `SLURM_LOCALID`, the first host of `SLURM_JOB_NODELIST`).
    pub fn resolve(flags: &LaunchFlags, env: &dyn Fn(&str) -> Option<String>) -> Result<Self> {
        let num = |name: &str| -> Result<Option<usize>> {
            env(name)
                .map(|v| {
                    v.trim().parse::<usize>().map_err(|_| {
                        Error::Config(format!("environment variable {name}={v:?} is not a number"))
                    })
                })
                .transpose()
        };
        let torchrun = env("WORLD_SIZE").is_some() && env("RANK").is_some();
        let slurm = env("SLURM_PROCID").is_some() && env("SLURM_NTASKS").is_some();
        let mut l = Self::single();
        if slurm {
            l.source = "slurm".into();
            l.rank = num("SLURM_PROCID")?.unwrap_or(0);
            l.world = num("SLURM_NTASKS")?.unwrap_or(1);
            l.local_rank = num("SLURM_LOCALID")?.unwrap_or(0);
            l.local_world = match env("SLURM_NTASKS_PER_NODE") {
                Some(v) => first_count(&v).unwrap_or(1),
                None => 1,
            };
            if let Some(nodes) = env("SLURM_JOB_NODELIST").or_else(|| env("SLURM_NODELIST")) {
                l.master_addr = first_host(&nodes).ok_or_else(|| {
                    Error::Config(format!(
                        "cannot read the first host of SLURM_JOB_NODELIST={nodes:?}"
                    ))
                })?;
            }
            // A port every task of the job derives alike (as Lightning does), unless given.
            l.master_port = match num("SLURM_JOB_ID")? {
                Some(id) => 15000 + (id % 20000) as u16,
                None => 29500,
            };
        }
        if torchrun {
            l.source = "torchrun".into();
            l.rank = num("RANK")?.unwrap_or(0);
            l.world = num("WORLD_SIZE")?.unwrap_or(1);
            l.local_rank = num("LOCAL_RANK")?.unwrap_or(0);
            l.local_world = num("LOCAL_WORLD_SIZE")?.unwrap_or(l.world);
            l.agent_store =
                env("TORCHELASTIC_USE_AGENT_STORE").is_some_and(|v| v == "True" || v == "1");
            l.restart = num("TORCHELASTIC_RESTART_COUNT")?.unwrap_or(0) as u64;
        }
        if torchrun || slurm {
            if let Some(a) = env("MASTER_ADDR") {
                l.master_addr = a;
            }
            if let Some(p) = num("MASTER_PORT")? {
                l.master_port = u16::try_from(p)
                    .map_err(|_| Error::Config(format!("MASTER_PORT={p} is not a port")))?;
            }
        }
        let explicit = flags.rank.is_some() || flags.world_size.is_some();
        if explicit {
            l.source = "flags".into();
            l.agent_store = false;
        }
        if let Some(r) = flags.rank {
            l.rank = r;
        }
        if let Some(w) = flags.world_size {
            l.world = w;
            if !torchrun && !slurm {
                l.local_world = w;
            }
        }
        if let Some(r) = flags.local_rank {
            l.local_rank = r;
        } else if explicit && !torchrun && !slurm {
            l.local_rank = l.rank;
        }
        if let Some(a) = &flags.master_addr {
            l.master_addr = a.clone();
        }
        if let Some(p) = flags.master_port {
            l.master_port = p;
        }
        if l.world == 0 || l.rank >= l.world {
            return Err(Error::Config(format!(
                "rank {} is not below the world size {} (from {})",
                l.rank, l.world, l.source
            )));
        }
        if l.world > 1 && l.master_port == 0 {
            return Err(Error::Config(
                "a world of several processes needs the store's port: --master-port or MASTER_PORT"
                    .into(),
            ));
        }
        Ok(l)
    }

    /// Resolve against this process's environment.
    pub fn from_env(flags: &LaunchFlags) -> Result<Self> {
        Self::resolve(flags, &|k| std::env::var(k).ok().filter(|v| !v.is_empty()))
    }
}

/// The first host of a Slurm host list: `gpu[003-010,012],cpu1` -> `gpu003`.
pub fn first_host(list: &str) -> Option<String> {
    let list = list.trim();
    let mut depth = 0;
    let end = list
        .char_indices()
        .find(|&(_, c)| {
            match c {
                '[' => depth += 1,
                ']' => depth -= 1,
                _ => {}
            }
            c == ',' && depth == 0
        })
        .map_or(list.len(), |(i, _)| i);
    let first = &list[..end];
    match first.find('[') {
        None => (!first.is_empty()).then(|| first.to_string()),
        Some(open) => {
            let inner = first[open + 1..].strip_suffix(']')?;
            let range = inner.split(',').next()?;
            let start = range.split('-').next()?;
            (!start.is_empty()).then(|| format!("{}{start}", &first[..open]))
        }
    }
}

/// `4(x2),2` -> 4: the tasks on the first node.
fn first_count(v: &str) -> Option<usize> {
    v.split([',', '(']).next()?.trim().parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env_of(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: std::collections::HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |k| map.get(k).cloned()
    }

    #[test]
    fn slurm_host_lists() {
        assert_eq!(
            first_host("gpu[003-010,012],cpu1").as_deref(),
            Some("gpu003")
        );
        assert_eq!(first_host("node7").as_deref(), Some("node7"));
        assert_eq!(first_host("a1,b[1-2]").as_deref(), Some("a1"));
        assert_eq!(first_host("n[12]").as_deref(), Some("n12"));
        assert_eq!(first_host(""), None);
        assert_eq!(first_count("4(x2),2"), Some(4));
    }

    #[test]
    fn flags_win_over_torchrun_which_wins_over_slurm() {
        let slurm = [
            ("SLURM_PROCID", "3"),
            ("SLURM_NTASKS", "8"),
            ("SLURM_LOCALID", "1"),
            ("SLURM_JOB_NODELIST", "gpu[07-08]"),
            ("SLURM_JOB_ID", "1234"),
        ];
        let l = Launch::resolve(&LaunchFlags::default(), &env_of(&slurm)).unwrap();
        assert_eq!((l.rank, l.world, l.local_rank), (3, 8, 1));
        assert_eq!(l.master_addr, "gpu07");
        assert_eq!(l.master_port, 15000 + 1234);
        assert_eq!(l.source, "slurm");

        let mut both = slurm.to_vec();
        both.extend([
            ("RANK", "5"),
            ("WORLD_SIZE", "16"),
            ("LOCAL_RANK", "2"),
            ("MASTER_ADDR", "head"),
            ("MASTER_PORT", "29400"),
            ("TORCHELASTIC_USE_AGENT_STORE", "True"),
            ("TORCHELASTIC_RESTART_COUNT", "2"),
        ]);
        let l = Launch::resolve(&LaunchFlags::default(), &env_of(&both)).unwrap();
        assert_eq!((l.rank, l.world, l.local_rank), (5, 16, 2));
        assert_eq!((l.master_addr.as_str(), l.master_port), ("head", 29400));
        assert!(l.agent_store);
        assert_eq!(l.restart, 2);
        assert_eq!(l.source, "torchrun");

        let flags = LaunchFlags {
            rank: Some(1),
            world_size: Some(2),
            master_port: Some(40000),
            ..Default::default()
        };
        let l = Launch::resolve(&flags, &env_of(&both)).unwrap();
        assert_eq!((l.rank, l.world, l.master_port), (1, 2, 40000));
        assert!(
            !l.agent_store,
            "explicit flags mean rank 0 serves the store"
        );
        assert_eq!(l.source, "flags");
    }

    #[test]
    fn bad_launches_are_refused_with_the_variable() {
        let e = Launch::resolve(
            &LaunchFlags::default(),
            &env_of(&[("RANK", "x"), ("WORLD_SIZE", "2")]),
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("RANK=\"x\""), "{e}");
        let e = Launch::resolve(
            &LaunchFlags::default(),
            &env_of(&[("RANK", "2"), ("WORLD_SIZE", "2"), ("MASTER_PORT", "1")]),
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("rank 2 is not below the world size 2"), "{e}");
        let l = Launch::resolve(&LaunchFlags::default(), &env_of(&[])).unwrap();
        assert_eq!(l, Launch::single());
    }
}
