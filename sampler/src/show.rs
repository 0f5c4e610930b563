//! `plan show`: what a plan trains on (counts and per-pool shares) and, given loss tables of
//! the previous round, how the losses of the selected units compare with those of all units.

use std::io::{BufReader, Read};
use std::path::{Path, PathBuf};

use plotters::prelude::*;

use crate::error::{Error, Result};
use crate::locate::Locator;
use crate::losses::LossTableReader;
use crate::plan::{Plan, PlanOrder, UnitRef};

#[derive(Debug, Clone, serde::Serialize)]
pub struct PoolShare {
    pub name: String,
    /// Plan positions drawn from the pool, and their share of all positions.
    pub positions: u64,
    pub share: f64,
    pub pool_units: u64,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct Histogram {
    pub min: f64,
    pub max: f64,
    /// Bin counts over `bins` equal bins of `[min, max]`.
    pub all: Vec<u64>,
    pub selected: Vec<u64>,
    pub all_units: u64,
    pub selected_units: u64,
    pub mean_all: f64,
    pub mean_selected: f64,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct PlanSummary {
    pub plan: PathBuf,
    pub round: u16,
    pub seed: u64,
    pub seq_len: u32,
    pub batch_units: u32,
    pub steps: u64,
    pub positions: u64,
    pub distinct_units: u64,
    pub tokens: u64,
    pub order: String,
    pub pools: Vec<PoolShare>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub selection: Option<crate::plan::SelectionInfo>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub losses: Option<Histogram>,
}

/// Summarises a plan; with loss tables, also histograms the losses of all their units against
/// those of the units this plan trains on (`bins` equal bins).
pub fn summarize(plan: &Plan, loss_tables: &[PathBuf], bins: usize) -> Result<PlanSummary> {
    let counts = pool_positions(plan)?;
    let positions = plan.num_positions();
    let pools = plan
        .pools()
        .iter()
        .zip(&counts)
        .map(|(pool, &n)| PoolShare {
            name: pool.name.clone(),
            positions: n,
            share: n as f64 / positions as f64,
            pool_units: pool.units,
        })
        .collect();
    let order = match &plan.header().order {
        PlanOrder::Permutation { exhausted } => {
            format!("permutation ({exhausted:?})").to_lowercase()
        }
        PlanOrder::List { order, .. } => format!("list ({order:?})").to_lowercase(),
    };
    let losses = if loss_tables.is_empty() {
        None
    } else {
        Some(histogram(plan, loss_tables, bins.max(1))?)
    };
    Ok(PlanSummary {
        plan: plan.path().to_path_buf(),
        round: plan.round(),
        seed: plan.header().seed,
        seq_len: plan.seq_len(),
        batch_units: plan.batch_units(),
        steps: plan.num_steps(),
        positions,
        distinct_units: plan.distinct_units(),
        tokens: positions * plan.seq_len() as u64,
        order,
        pools,
        selection: plan.header().selection.clone(),
        losses,
    })
}

fn pool_positions(plan: &Plan) -> Result<Vec<u64>> {
    let mut counts = vec![0u64; plan.pools().len()];
    match &plan.header().order {
        PlanOrder::Permutation { .. } => {
            let round = plan
                .round_one()
                .ok_or_else(|| Error::Internal("no permutation".into()))?;
            for (p, count) in counts.iter_mut().enumerate() {
                *count = round.drawn(p);
            }
        }
        PlanOrder::List {
            file,
            id_width,
            units,
            ..
        } => {
            let path = plan.path().parent().unwrap_or(Path::new(".")).join(file);
            let mut reader = BufReader::with_capacity(1 << 20, fs_err::File::open(&path)?);
            let width = *id_width as usize;
            let mut buf = vec![0u8; width];
            for _ in 0..*units {
                reader.read_exact(&mut buf)?;
                let id = if width == 4 {
                    u32::from_le_bytes(buf[..4].try_into().expect("4 bytes")) as u64
                } else {
                    u64::from_le_bytes(buf[..8].try_into().expect("8 bytes"))
                };
                counts[plan.unit_of_global(id.min(plan.total_units() - 1)).pool as usize] += 1;
            }
        }
    }
    Ok(counts)
}

fn histogram(plan: &Plan, loss_tables: &[PathBuf], bins: usize) -> Result<Histogram> {
    let (mut min, mut max) = (f64::INFINITY, f64::NEG_INFINITY);
    for path in loss_tables {
        for chunk in LossTableReader::open(path)? {
            for &loss in chunk?.losses.values() {
                min = min.min(loss as f64);
                max = max.max(loss as f64);
            }
        }
    }
    if !(min.is_finite() && max.is_finite()) {
        return Err(Error::Config("the loss tables hold no finite loss".into()));
    }
    let width = if max > min {
        (max - min) / bins as f64
    } else {
        1.0
    };
    let locator = Locator::new(plan)?;
    let mut h = Histogram {
        min,
        max,
        all: vec![0; bins],
        selected: vec![0; bins],
        all_units: 0,
        selected_units: 0,
        mean_all: 0.0,
        mean_selected: 0.0,
    };
    let mut positions = Vec::new();
    for path in loss_tables {
        for chunk in LossTableReader::open(path)? {
            let chunk = chunk?;
            for (i, &loss) in chunk.losses.values().iter().enumerate() {
                let loss = loss as f64;
                let bin = (((loss - min) / width) as usize).min(bins - 1);
                h.all[bin] += 1;
                h.all_units += 1;
                h.mean_all += loss;
                let unit = UnitRef {
                    pool: chunk.pool(i),
                    unit: chunk.units.value(i),
                };
                if (unit.pool as usize) >= plan.pools().len()
                    || unit.unit >= plan.pools()[unit.pool as usize].units
                {
                    continue;
                }
                positions.clear();
                locator.positions_of(unit, &mut positions);
                if !positions.is_empty() {
                    h.selected[bin] += 1;
                    h.selected_units += 1;
                    h.mean_selected += loss;
                }
            }
        }
    }
    h.mean_all /= h.all_units.max(1) as f64;
    h.mean_selected /= h.selected_units.max(1) as f64;
    Ok(h)
}

/// Draws the two loss distributions (as densities, so their shapes compare) into an SVG file.
pub fn write_histogram_svg(h: &Histogram, title: &str, path: &Path) -> Result<()> {
    fs_err::write(path, histogram_svg(h, title)?)?;
    Ok(())
}

/// The two loss distributions of [`write_histogram_svg`], as an SVG document.
pub fn histogram_svg(h: &Histogram, title: &str) -> Result<String> {
    let plot_err = |e: &dyn std::fmt::Display| Error::Plot {
        what: format!("the picture `{title}`"),
        message: e.to_string(),
    };
    let bins = h.all.len();
    let width = if h.max > h.min {
        (h.max - h.min) / bins as f64
    } else {
        1.0
    };
    let density = |counts: &[u64], total: u64| -> Vec<(f64, f64)> {
        let mut points = Vec::with_capacity(2 * bins);
        for (i, &c) in counts.iter().enumerate() {
            let y = c as f64 / (total.max(1) as f64 * width);
            let x0 = h.min + i as f64 * width;
            points.push((x0, y));
            points.push((x0 + width, y));
        }
        points
    };
    let all = density(&h.all, h.all_units);
    let selected = density(&h.selected, h.selected_units);
    let y_max = all.iter().chain(&selected).map(|p| p.1).fold(0.0, f64::max) * 1.1 + 1e-12;
    let mut svg = String::new();
    let root = SVGBackend::with_string(&mut svg, (800, 500)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| plot_err(&e))?;
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 20))
        .margin(15)
        .x_label_area_size(40)
        .y_label_area_size(60)
        .build_cartesian_2d(h.min..(h.min + width * bins as f64), 0.0..y_max)
        .map_err(|e| plot_err(&e))?;
    chart
        .configure_mesh()
        .x_desc("loss (nats per token)")
        .y_desc("density")
        .draw()
        .map_err(|e| plot_err(&e))?;
    let label_all = format!("all units ({}, mean {:.3})", h.all_units, h.mean_all);
    let label_selected = format!(
        "selected ({}, mean {:.3})",
        h.selected_units, h.mean_selected
    );
    chart
        .draw_series(LineSeries::new(all, BLUE.stroke_width(2)))
        .map_err(|e| plot_err(&e))?
        .label(label_all)
        .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], BLUE.stroke_width(2)));
    chart
        .draw_series(LineSeries::new(selected, RED.stroke_width(2)))
        .map_err(|e| plot_err(&e))?
        .label(label_selected)
        .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], RED.stroke_width(2)));
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .draw()
        .map_err(|e| plot_err(&e))?;
    root.present().map_err(|e| plot_err(&e))?;
    drop(chart);
    drop(root);
    Ok(svg)
}
