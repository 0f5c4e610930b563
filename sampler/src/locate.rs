//! From a unit back to where a plan trains it. Round-1 plans invert their permutation in O(1);
//! list plans (selected rounds) need an index, built once from the list file: (unit, position)
//! pairs sorted by unit, 16 bytes per position.

use std::io::{BufReader, Read};

use crate::error::{Error, Result};
use crate::plan::{Plan, PlanOrder, UnitRef};

pub struct Locator<'a> {
    plan: &'a Plan,
    sorted: Vec<(u64, u64)>,
}

impl<'a> Locator<'a> {
    pub fn new(plan: &'a Plan) -> Result<Locator<'a>> {
        let mut sorted = Vec::new();
        if let PlanOrder::List {
            file,
            id_width,
            units,
            ..
        } = &plan.header().order
        {
            let path = plan
                .path()
                .parent()
                .unwrap_or(std::path::Path::new("."))
                .join(file);
            let mut reader = BufReader::with_capacity(1 << 20, fs_err::File::open(&path)?);
            let width = *id_width as usize;
            sorted.reserve_exact(*units as usize);
            let mut buf = vec![0u8; width * 65536];
            let mut position = 0u64;
            while position < *units {
                let n = ((*units - position) as usize).min(65536);
                reader
                    .read_exact(&mut buf[..n * width])
                    .map_err(|e| Error::PlanUnits {
                        path: path.clone(),
                        message: format!("reading position {position}: {e}"),
                    })?;
                for chunk in buf[..n * width].chunks_exact(width) {
                    let id = if width == 4 {
                        u32::from_le_bytes(chunk.try_into().expect("4 bytes")) as u64
                    } else {
                        u64::from_le_bytes(chunk.try_into().expect("8 bytes"))
                    };
                    sorted.push((id, position));
                    position += 1;
                }
            }
            sorted.sort_unstable();
            if let Some(w) = sorted.windows(2).find(|w| w[0].0 == w[1].0) {
                return Err(Error::PlanUnits {
                    path,
                    message: format!(
                        "unit id {} is listed at positions {} and {}",
                        w[0].0, w[0].1, w[1].1
                    ),
                });
            }
        }
        Ok(Locator { plan, sorted })
    }

    /// Appends the plan positions of `unit` to `out` (none when the plan does not train it).
    #[inline]
    pub fn positions_of(&self, unit: UnitRef, out: &mut Vec<u64>) {
        if let Some(r) = self.plan.round_one() {
            r.positions_of(unit, out);
            return;
        }
        let id = self.plan.global_id(unit);
        let start = self.sorted.partition_point(|&(u, _)| u < id);
        out.extend(
            self.sorted[start..]
                .iter()
                .take_while(|&&(u, _)| u == id)
                .map(|&(_, p)| p),
        );
    }
}
