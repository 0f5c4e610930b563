//! Multi-process launch for `tinyforge train` and `tinyforge score`: the flags, joining the job a
//! launcher (torchrun, Slurm's srun, or these flags) describes, and `--nproc N`, which starts N
//! local ranks itself the way torchrun does (it serves the store; each child is a client).

use std::ffi::OsString;
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::Args;
use tinyforge_train::dist::{Backend, Launch, LaunchFlags, Store, World};

use crate::cli::{GlobalArgs, ProgressMode};

/// Flags of a multi-process run. Explicit flags win over torchrun's variables (RANK,
/// WORLD_SIZE, LOCAL_RANK, MASTER_ADDR, MASTER_PORT), which win over Slurm's (SLURM_PROCID,
/// SLURM_NTASKS, SLURM_LOCALID, SLURM_JOB_NODELIST).
#[derive(Debug, Clone, Args)]
pub struct DistArgs {
    /// Start N processes on this machine (one per GPU, or CPU ranks over Gloo) and wait for
    /// them; what torchrun --nproc-per-node N does for one machine.
    #[arg(long, value_name = "N")]
    pub nproc: Option<usize>,
    /// This process's rank (with --world-size and --master-port: a hand-made launch).
    #[arg(long)]
    pub rank: Option<usize>,
    /// Processes in the job.
    #[arg(long)]
    pub world_size: Option<usize>,
    /// Rank on this machine (picks cuda:LOCAL_RANK).
    #[arg(long)]
    pub local_rank: Option<usize>,
    /// Host of rank 0's rendezvous store.
    #[arg(long)]
    pub master_addr: Option<String>,
    #[arg(long)]
    pub master_port: Option<u16>,
    /// c10d backend: auto (NCCL on CUDA, Gloo on CPU), gloo, nccl.
    #[arg(long, default_value = "auto")]
    pub dist_backend: String,
    /// Seconds a collective or the store may wait before the run fails naming the silent ranks
    /// (default 600; TINYFORGE_DIST_TIMEOUT).
    #[arg(long, value_name = "SECS")]
    pub dist_timeout: Option<f64>,
}

impl DistArgs {
    fn flags(&self) -> LaunchFlags {
        LaunchFlags {
            rank: self.rank,
            world_size: self.world_size,
            local_rank: self.local_rank,
            master_addr: self.master_addr.clone(),
            master_port: self.master_port,
        }
    }

    fn timeout(&self) -> Duration {
        self.dist_timeout.map_or_else(
            tinyforge_train::dist::default_timeout,
            Duration::from_secs_f64,
        )
    }

    /// `--nproc N` with N > 1 and not already one of the children it started.
    pub fn spawns(&self) -> Option<usize> {
        self.nproc
            .filter(|&n| n > 1 && std::env::var_os(CHILD).is_none())
    }
}

/// Set in the children `--nproc` starts.
const CHILD: &str = "TINYFORGE_NPROC_CHILD";

/// Who this process is: its launch, the device it trains on (cuda:LOCAL_RANK on a CUDA run of
/// several ranks) and its world, joined.
pub fn join(
    args: &DistArgs,
    device: tinyforge_train::TorchDevice,
) -> anyhow::Result<(World, tinyforge_train::TorchDevice)> {
    let launch = Launch::from_env(&args.flags())?;
    let device = match device {
        tinyforge_train::TorchDevice::Cuda(_) if launch.world > 1 => {
            tinyforge_train::TorchDevice::Cuda(launch.local_rank)
        }
        d => d,
    };
    let backend = Backend::parse(&args.dist_backend, device)?;
    if launch.world > 1 {
        tracing::info!(
            rank = launch.rank,
            world = launch.world,
            local_rank = launch.local_rank,
            store = %format!("{}:{}", launch.master_addr, launch.master_port),
            from = %launch.source,
            backend = backend.name(),
            "joining"
        );
    }
    let world = World::join(&launch, backend, args.timeout())?;
    Ok((world, device))
}

/// What the ranks other than 0 report: nothing but errors (rank 0 speaks for the job).
pub fn rank_globals(world: &World, global: &GlobalArgs) -> GlobalArgs {
    if world.is_main() {
        global.clone()
    } else {
        GlobalArgs {
            progress: ProgressMode::None,
            quiet: true,
        }
    }
}

/// Run this same command line as `n` local ranks: serve the rendezvous store, start the
/// children with torchrun's variables, and wait. The first child to fail names itself; the
/// others are given the timeout to fail on their own, then stopped.
pub fn spawn_local(n: usize, args: &DistArgs) -> anyhow::Result<()> {
    let timeout = args.timeout();
    let store = Store::tcp("127.0.0.1", 0, true, timeout, "")?;
    let port = store.port();
    let exe = std::env::current_exe().context("cannot find the tinyforge executable")?;
    let argv = without_nproc(std::env::args_os().skip(1));
    // As torchrun: ranks share the machine's cores instead of each spawning one thread per core.
    let threads = std::env::var("OMP_NUM_THREADS").unwrap_or_else(|_| {
        let cores = std::thread::available_parallelism().map_or(1, |c| c.get());
        (cores / n).max(1).to_string()
    });
    eprintln!("tinyforge: starting {n} ranks (store at 127.0.0.1:{port}, {threads} threads each)");
    let mut children: Vec<(usize, Child)> = Vec::with_capacity(n);
    for rank in 0..n {
        let child = Command::new(&exe)
            .args(&argv)
            .env(CHILD, "1")
            .env("RANK", rank.to_string())
            .env("LOCAL_RANK", rank.to_string())
            .env("WORLD_SIZE", n.to_string())
            .env("LOCAL_WORLD_SIZE", n.to_string())
            .env("MASTER_ADDR", "127.0.0.1")
            .env("MASTER_PORT", port.to_string())
            .env("TORCHELASTIC_USE_AGENT_STORE", "True")
            .env("TORCHELASTIC_RESTART_COUNT", "0")
            .env("OMP_NUM_THREADS", &threads)
            .spawn()
            .with_context(|| format!("cannot start rank {rank}"))?;
        children.push((rank, child));
    }
    let mut first_failure: Option<(usize, String, Instant)> = None;
    let mut failed = vec![];
    while !children.is_empty() {
        let mut i = 0;
        while i < children.len() {
            let (rank, child) = &mut children[i];
            match child.try_wait()? {
                Some(status) => {
                    if !status.success() {
                        let what = describe(status);
                        if first_failure.is_none() {
                            eprintln!(
                                "tinyforge: rank {rank} (pid {}) {what}; waiting up to {} s for \
                                 the other ranks to stop",
                                child.id(),
                                timeout.as_secs()
                            );
                            first_failure = Some((*rank, what.clone(), Instant::now()));
                        }
                        failed.push(format!("rank {rank} {what}"));
                    }
                    children.remove(i);
                }
                None => i += 1,
            }
        }
        if let Some((_, _, at)) = &first_failure
            && at.elapsed() > timeout + Duration::from_secs(5)
        {
            for (rank, child) in &mut children {
                eprintln!("tinyforge: rank {rank} still runs after the timeout; stopping it");
                let _ = child.kill();
                let _ = child.wait();
                failed.push(format!("rank {rank} stopped by the launcher"));
            }
            children.clear();
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    drop(store);
    match first_failure {
        None => Ok(()),
        Some((rank, what, _)) => bail!(
            "rank {rank} of {n} {what} first ({}); run the same command again to resume from \
             the last checkpoint",
            failed.join(", ")
        ),
    }
}

fn describe(status: std::process::ExitStatus) -> String {
    use std::os::unix::process::ExitStatusExt;
    match (status.code(), status.signal()) {
        (Some(c), _) => format!("exited with status {c}"),
        (None, Some(s)) => format!("was killed by signal {s}"),
        _ => "ended".into(),
    }
}

/// The command line without `--nproc N` / `--nproc=N`.
fn without_nproc(args: impl Iterator<Item = OsString>) -> Vec<OsString> {
    let mut out = vec![];
    let mut skip = false;
    for a in args {
        if skip {
            skip = false;
            continue;
        }
        match a.to_str() {
            Some("--nproc") => skip = true,
            Some(s) if s.starts_with("--nproc=") => {}
            _ => out.push(a),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nproc_is_taken_out_of_the_child_command_line() {
        let args = [
            "train",
            "c.toml",
            "--nproc",
            "4",
            "--steps",
            "3",
            "--nproc=2",
        ]
        .map(OsString::from)
        .into_iter();
        assert_eq!(
            without_nproc(args),
            ["train", "c.toml", "--steps", "3"].map(OsString::from)
        );
    }
}
