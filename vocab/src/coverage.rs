//! Coverage: the share of all counted tokens that the k most frequent tokens account for
//! (the paper's Figure 2: the top 48k of a 100k vocabulary cover 97.86% of the corpus).

use std::io::Write;
use std::path::Path;

use plotters::prelude::*;

use crate::error::{Error, Result};

/// The default k at which coverage is reported.
pub const DEFAULT_KS: &[usize] = &[
    1_000, 2_000, 4_000, 8_000, 16_000, 32_000, 48_000, 64_000, 100_000, 128_000,
];

/// Coverage targets for which the smallest k is reported.
pub const TARGETS: &[f64] = &[0.5, 0.9, 0.95, 0.98, 0.99, 0.999, 1.0];

/// The cumulative coverage curve of a counts vector.
#[derive(Debug, Clone)]
pub struct CoverageCurve {
    /// `cumulative[k - 1]` = tokens covered by the top k (counts sorted descending).
    cumulative: Vec<u64>,
    total: u64,
}

#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct CoveragePoint {
    pub k: usize,
    pub coverage: f64,
}

#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct KForCoverage {
    pub coverage: f64,
    /// Smallest k reaching `coverage`.
    pub k: usize,
}

impl CoverageCurve {
    pub fn new(counts: &[u64]) -> Self {
        let mut sorted: Vec<u64> = counts.iter().copied().filter(|&c| c > 0).collect();
        sorted.sort_unstable_by(|a, b| b.cmp(a));
        let mut running = 0u64;
        let cumulative = sorted
            .iter()
            .map(|&c| {
                running += c;
                running
            })
            .collect();
        Self {
            cumulative,
            total: running,
        }
    }

    /// Coverage of the top `k` tokens, in [0, 1] (1 for an empty corpus).
    pub fn at(&self, k: usize) -> f64 {
        if self.total == 0 {
            return 1.0;
        }
        let covered = match k {
            0 => 0,
            k => self.cumulative[k.min(self.cumulative.len()) - 1],
        };
        covered as f64 / self.total as f64
    }

    /// Smallest k whose coverage reaches `target`.
    pub fn k_for(&self, target: f64) -> usize {
        let wanted = (target * self.total as f64).ceil() as u64;
        if wanted == 0 {
            return 0;
        }
        (self.cumulative.partition_point(|&c| c < wanted) + 1).min(self.cumulative.len())
    }

    pub fn points(&self, ks: &[usize]) -> Vec<CoveragePoint> {
        ks.iter()
            .map(|&k| CoveragePoint {
                k,
                coverage: self.at(k),
            })
            .collect()
    }

    pub fn k_for_targets(&self) -> Vec<KForCoverage> {
        TARGETS
            .iter()
            .map(|&coverage| KForCoverage {
                coverage,
                k: self.k_for(coverage),
            })
            .collect()
    }

    /// k values for the CSV and the plot: every k up to 100, then steps of 1%, plus `extra`.
    fn sample_ks(&self, extra: &[usize]) -> Vec<usize> {
        let n = self.cumulative.len();
        let mut ks: Vec<usize> = (1..=n.min(100)).collect();
        let mut k = 100f64;
        while (k as usize) < n {
            ks.push(k as usize);
            k *= 1.01;
        }
        ks.push(n);
        ks.extend(extra.iter().copied().filter(|&k| k > 0 && k <= n));
        ks.sort_unstable();
        ks.dedup();
        ks
    }

    /// Writes `k,coverage` rows (the curve sampled for plotting elsewhere).
    pub fn write_csv(&self, path: &Path, extra: &[usize]) -> Result<()> {
        let mut out = std::io::BufWriter::new(fs_err::File::create(path)?);
        writeln!(out, "k,coverage")?;
        for k in self.sample_ks(extra) {
            writeln!(out, "{k},{:.8}", self.at(k))?;
        }
        out.flush()?;
        Ok(())
    }

    /// Draws the curve (log k against coverage %) with the paper's 90% line.
    pub fn write_svg(&self, path: &Path, title: &str, marks: &[usize]) -> Result<()> {
        let plot_err = |e: &dyn std::fmt::Display| Error::Plot {
            path: path.to_owned(),
            message: e.to_string(),
        };
        let n = self.cumulative.len().max(2);
        let root = SVGBackend::new(path, (900, 560)).into_drawing_area();
        root.fill(&WHITE).map_err(|e| plot_err(&e))?;
        let mut chart = ChartBuilder::on(&root)
            .caption(title, ("sans-serif", 22))
            .margin(16)
            .x_label_area_size(44)
            .y_label_area_size(56)
            .build_cartesian_2d((1f64..n as f64).log_scale(), 0f64..100f64)
            .map_err(|e| plot_err(&e))?;
        chart
            .configure_mesh()
            .x_desc("top-k tokens kept (log scale)")
            .y_desc("corpus tokens covered (%)")
            .draw()
            .map_err(|e| plot_err(&e))?;
        let curve: Vec<(f64, f64)> = self
            .sample_ks(&[])
            .into_iter()
            .map(|k| (k as f64, 100.0 * self.at(k)))
            .collect();
        chart
            .draw_series(LineSeries::new(curve, BLUE.stroke_width(2)))
            .map_err(|e| plot_err(&e))?
            .label("coverage")
            .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], BLUE));
        chart
            .draw_series(LineSeries::new(
                [(1.0, 90.0), (n as f64, 90.0)],
                RED.mix(0.6),
            ))
            .map_err(|e| plot_err(&e))?
            .label("90% (paper's minimum)")
            .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], RED.mix(0.6)));
        let marked: Vec<(f64, f64)> = marks
            .iter()
            .filter(|&&k| k >= 1 && k <= n)
            .map(|&k| (k as f64, 100.0 * self.at(k)))
            .collect();
        chart
            .draw_series(marked.iter().map(|&p| Circle::new(p, 4, BLACK.filled())))
            .map_err(|e| plot_err(&e))?;
        chart
            .draw_series(marked.iter().map(|&(k, c)| {
                Text::new(
                    format!("{:.0}k: {c:.2}%", k / 1000.0),
                    (k, c - 6.0),
                    ("sans-serif", 13),
                )
            }))
            .map_err(|e| plot_err(&e))?;
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::LowerRight)
            .border_style(BLACK)
            .background_style(WHITE.mix(0.8))
            .draw()
            .map_err(|e| plot_err(&e))?;
        root.present().map_err(|e| plot_err(&e))?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn coverage_and_k_for_target() {
        let curve = CoverageCurve::new(&[0, 50, 30, 0, 20]);
        assert_eq!(curve.at(0), 0.0);
        assert_eq!(curve.at(1), 0.5);
        assert_eq!(curve.at(2), 0.8);
        assert_eq!(curve.at(10), 1.0);
        assert_eq!(curve.k_for(0.5), 1);
        assert_eq!(curve.k_for(0.51), 2);
        assert_eq!(curve.k_for(0.8), 2);
        assert_eq!(curve.k_for(1.0), 3);
        assert_eq!(curve.k_for(0.0), 0);
    }
}
