//! `tinyforge generate`: a quick look at what a checkpoint writes, without Python.

use std::io::Write;
use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Context, bail};
use clap::Args;
use tinyforge_eval::{HfTokenizer, Sampling, TextEncoder};
use tinyforge_model::Device;

#[derive(Debug, Args)]
#[command(after_help = "Examples:\n  \
tinyforge generate out/demo/train --prompt 'The state of the union'            # newest checkpoint, greedy\n  \
tinyforge generate CKPT --prompt '床前明月光' --temperature 0.8 --top-p 0.95 --seed 7\n  \
tinyforge generate CKPT --prompt 'fn main()' --device cuda --max-new-tokens 200\n\n\
The prompt and its continuation go to stdout as text (the continuation as it is generated);\n\
a JSON summary goes to stderr. Generation stops at the checkpoint's EOS\n\
(generation_config.json, else config.json) or after --max-new-tokens.")]
pub struct GenerateArgs {
    /// Checkpoint folder (Hugging Face LLaMA-family), or a training run folder (its newest
    /// checkpoint).
    pub checkpoint: PathBuf,
    /// The text to continue.
    #[arg(long)]
    pub prompt: String,
    /// tokenizer.json (default: the checkpoint's own).
    #[arg(long)]
    pub tokenizer: Option<PathBuf>,
    #[arg(long, default_value_t = 64)]
    pub max_new_tokens: usize,
    /// 0 is greedy; above 0, sample from softmax(logits / T).
    #[arg(long, default_value_t = 0.0)]
    pub temperature: f64,
    /// Sample only from the most likely tokens whose probability adds up to P.
    #[arg(long, default_value_t = 1.0)]
    pub top_p: f64,
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// cpu (pure-Rust forward), or cuda / cuda:N / auto (libtorch; a build with --features train).
    #[arg(long, default_value_t = Device::Cpu)]
    pub device: Device,
}

/// The ids generation stops at: `generation_config.json`'s `eos_token_id` (one id or a list),
/// else `config.json`'s.
fn stop_tokens(checkpoint: &std::path::Path) -> anyhow::Result<Vec<u32>> {
    let path = checkpoint.join(tinyforge_model::GENERATION_CONFIG_FILE);
    if path.is_file() {
        let config: serde_json::Value = serde_json::from_slice(&fs_err::read(&path)?)
            .with_context(|| format!("{}: invalid JSON", path.display()))?;
        let ids = match &config["eos_token_id"] {
            serde_json::Value::Array(ids) => ids.iter().filter_map(|v| v.as_u64()).collect(),
            value => value.as_u64().into_iter().collect::<Vec<_>>(),
        };
        if !ids.is_empty() {
            return Ok(ids.into_iter().map(|id| id as u32).collect());
        }
    }
    Ok(tinyforge_model::eos_token_id(checkpoint)
        .into_iter()
        .collect())
}

pub fn run(args: GenerateArgs) -> anyhow::Result<()> {
    let checkpoint = super::eval::resolve_checkpoint(&args.checkpoint)?;
    let tokenizer_path = args
        .tokenizer
        .clone()
        .unwrap_or_else(|| checkpoint.join(tinyforge_model::TOKENIZER_FILE));
    if !tokenizer_path.is_file() {
        bail!(
            "no tokenizer at {}: pass --tokenizer (the tokenizer.json the model was trained with)",
            tokenizer_path.display()
        );
    }
    let stop = stop_tokens(&checkpoint)?;
    let tokenizer = HfTokenizer::from_file(&tokenizer_path, stop.first().copied())?;
    let model = super::eval::load_model_at(&checkpoint, args.device, None)?;
    let prompt = tokenizer.encode(&args.prompt)?;
    let sampling = Sampling {
        max_new_tokens: args.max_new_tokens,
        temperature: args.temperature,
        top_p: args.top_p,
        seed: args.seed,
        stop,
    };
    let start = Instant::now();
    let mut out = std::io::stdout().lock();
    write!(out, "{}", args.prompt)?;
    out.flush()?;
    // Decoded whole each time (a token may be half a character): print what is new.
    let mut shown = 0usize;
    let mut so_far = Vec::new();
    let mut print_error = None;
    let (tokens, stopped) = tinyforge_eval::generate(model.as_ref(), &prompt, &sampling, |id| {
        if sampling.stop.contains(&id) || print_error.is_some() {
            return;
        }
        so_far.push(id);
        match tokenizer.decode(&so_far) {
            Ok(text) => {
                let complete = text.trim_end_matches('\u{fffd}');
                if complete.len() > shown && complete.is_char_boundary(shown) {
                    let result = write!(out, "{}", &complete[shown..]).and_then(|()| out.flush());
                    if let Err(err) = result {
                        print_error = Some(err);
                    }
                    shown = complete.len();
                }
            }
            Err(err) => print_error = Some(std::io::Error::other(err.to_string())),
        }
    })?;
    if let Some(err) = print_error {
        if err.kind() == std::io::ErrorKind::BrokenPipe {
            return Ok(());
        }
        return Err(err).context("writing the generated text");
    }
    let text = tokenizer.decode(&so_far)?;
    if text.len() > shown {
        write!(out, "{}", &text[shown..])?;
    }
    writeln!(out)?;
    let seconds = start.elapsed().as_secs_f64();
    let summary = serde_json::json!({
        "checkpoint": checkpoint,
        "prompt_tokens": prompt.len(),
        "new_tokens": tokens.len(),
        "tokens": tokens,
        "stopped_at_eos": stopped,
        "seconds": (seconds * 1000.0).round() / 1000.0,
        "tokens_per_s": if seconds > 0.0 { (tokens.len() as f64 / seconds * 10.0).round() / 10.0 } else { 0.0 },
    });
    eprintln!("{}", serde_json::to_string(&summary)?);
    Ok(())
}
