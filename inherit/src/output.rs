//! The student folder (docs/FORMAT.md, "Inherited students"): a Hugging Face checkpoint
//! (`config.json`, `model.safetensors`, the student's tokenizer files) plus `inherit.json`,
//! `scores.safetensors` and `layer-scores.svg`. Written under a temporary name beside the
//! target and renamed into place.

use std::path::Path;

use plotters::prelude::*;
use tch::Tensor;
use tinyforge_train::Model;

use crate::error::{Error, Result};
use crate::scores::UnitScores;
use crate::{InheritConfig, InheritReport};

/// Tokenizer files a Hugging Face folder carries, copied from the student's tokenizer folder.
const TOKENIZER_FILES: &[&str] = &[
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
];

pub fn write(
    cfg: &InheritConfig,
    student: &Model,
    scores: &UnitScores,
    report: &InheritReport,
    eos_id: u32,
) -> Result<()> {
    let out = &cfg.out;
    let name = out
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "student".into());
    let parent = out.parent().filter(|p| !p.as_os_str().is_empty());
    let parent = parent.unwrap_or(Path::new("."));
    fs_err::create_dir_all(parent)?;
    let tmp = parent.join(format!(".tmp-{name}-{}", std::process::id()));
    if tmp.exists() {
        fs_err::remove_dir_all(&tmp)?;
    }
    fs_err::create_dir_all(&tmp)?;
    let result = (|| -> Result<()> {
        tinyforge_train::checkpoint::write_model_files(&tmp, student, Some(eos_id))?;
        let tokenizer_dir = match &cfg.id_map {
            Some(map) => map.parent().unwrap_or(Path::new(".")).to_path_buf(),
            None => cfg.teacher.clone(),
        };
        for file in TOKENIZER_FILES {
            let src = tokenizer_dir.join(file);
            if src.exists() {
                fs_err::copy(&src, tmp.join(file))?;
            }
        }
        Tensor::write_safetensors(
            &[
                ("hidden", scores.hidden.shallow_clone()),
                ("heads", scores.heads.shallow_clone()),
                ("kv_heads", scores.kv.shallow_clone()),
                ("neurons", scores.neurons.shallow_clone()),
            ],
            tmp.join("scores.safetensors"),
        )?;
        plot_layers(
            &tmp.join("layer-scores.svg"),
            &report.layer_scores,
            &report.kept_layers,
        )?;
        fs_err::write(
            tmp.join("inherit.json"),
            serde_json::to_vec_pretty(report).expect("json"),
        )?;
        if out.exists() {
            // --overwrite: the new student is complete; only now does the old one go.
            fs_err::remove_dir_all(out)?;
        }
        fs_err::rename(&tmp, out)?;
        Ok(())
    })();
    if result.is_err() {
        let _ = fs_err::remove_dir_all(&tmp);
    }
    result
}

/// Block importance of every teacher layer, kept layers in blue, dropped in grey.
fn plot_layers(path: &Path, scores: &[f64], kept: &[usize]) -> Result<()> {
    let err = |e: String| Error::Output {
        path: path.to_path_buf(),
        reason: format!("cannot draw: {e}"),
    };
    let hi = scores.iter().copied().fold(0.0f64, f64::max).max(1e-6) * 1.1;
    let root = SVGBackend::new(path, (800, 420)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| err(e.to_string()))?;
    let mut chart = ChartBuilder::on(&root)
        .caption(
            "block importance (1 - cos(x_in, x_out)); blue: kept",
            ("sans-serif", 18),
        )
        .margin(12)
        .x_label_area_size(36)
        .y_label_area_size(56)
        .build_cartesian_2d(-0.5f64..scores.len() as f64 - 0.5, 0f64..hi)
        .map_err(|e| err(e.to_string()))?;
    chart
        .configure_mesh()
        .x_desc("teacher layer")
        .y_desc("importance")
        .draw()
        .map_err(|e| err(e.to_string()))?;
    chart
        .draw_series(scores.iter().enumerate().map(|(i, &s)| {
            let color = if kept.contains(&i) {
                BLUE.filled()
            } else {
                RGBColor(160, 160, 160).filled()
            };
            Rectangle::new([(i as f64 - 0.4, 0.0), (i as f64 + 0.4, s)], color)
        }))
        .map_err(|e| err(e.to_string()))?;
    root.present().map_err(|e| err(e.to_string()))?;
    Ok(())
}
