//! Calibration data: evenly spaced windows of a token-shard dataset in the student's vocabulary
//! (what `tinyforge tokenize` wrote with the compact tokenizer), and the same windows mapped
//! back to the teacher's ids through the id map.

use std::path::Path;

use tch::{Device, Kind, Tensor};
use tinyforge_shards::Dataset;
use tinyforge_vocab::IdMap;

use crate::error::{Error, Result};

/// Calibration windows `[N, T + 1]` (int64) in both vocabularies.
pub struct Calibration {
    pub student: Tensor,
    pub teacher: Tensor,
    pub seq_len: usize,
    pub eos_id: u32,
}

impl Calibration {
    pub fn sequences(&self) -> usize {
        self.student.size()[0] as usize
    }

    /// Batches of at most `batch` windows, on `device`: (student ids, teacher ids).
    pub fn batches(&self, batch: usize, device: Device) -> Vec<(Tensor, Tensor)> {
        let n = self.sequences() as i64;
        (0..n)
            .step_by(batch.max(1))
            .map(|start| {
                let len = (batch as i64).min(n - start);
                (
                    self.student.narrow(0, start, len).to_device(device),
                    self.teacher.narrow(0, start, len).to_device(device),
                )
            })
            .collect()
    }
}

/// Read `sequences` windows of `seq_len + 1` tokens from `dataset`, checking that its tokens
/// are the student's: the id map's compact tokenizer, or with no map the teacher's tokenizer
/// (`teacher_tokenizer_sha256`, when the teacher folder has a `tokenizer.json`).
pub fn load(
    dataset: &Path,
    id_map: Option<&IdMap>,
    teacher_tokenizer_sha256: Option<&str>,
    teacher_vocab: usize,
    sequences: usize,
    seq_len: usize,
) -> Result<Calibration> {
    let data = Dataset::open(dataset)?;
    let manifest = data.manifest();
    let (want, what) = match (id_map, teacher_tokenizer_sha256) {
        (Some(map), _) => (
            Some(map.tokenizer_sha256.as_str()),
            "the id map's compact tokenizer",
        ),
        (None, Some(sha)) => (Some(sha), "the teacher's tokenizer.json"),
        (None, None) => (None, ""),
    };
    if let Some(want) = want
        && manifest.tokenizer_sha256 != want
    {
        return Err(Error::mismatch(
            dataset,
            format!(
                "calibration tokens come from the tokenizer with sha256 {}, not {what} ({want}); \
                 tokenize the calibration documents with the student's tokenizer",
                manifest.tokenizer_sha256
            ),
        ));
    }
    let units = data.unit_count(seq_len);
    if units == 0 {
        return Err(Error::mismatch(
            dataset,
            format!(
                "holds {} tokens, fewer than one calibration window of {} tokens",
                data.total_tokens(),
                seq_len + 1
            ),
        ));
    }
    let n = (sequences as u64).min(units).max(1);
    let student_vocab = id_map.map_or(teacher_vocab, |m| m.new_to_old.len());
    let mut student = Vec::with_capacity(n as usize * (seq_len + 1));
    let mut window = vec![0u32; seq_len + 1];
    for i in 0..n {
        // Evenly spaced over the whole stream, so every part of the corpus is represented.
        let unit = i * units / n;
        data.window_into(unit, seq_len, &mut window)?;
        if let Some(&bad) = window.iter().find(|&&t| t as usize >= student_vocab) {
            return Err(Error::mismatch(
                dataset,
                format!(
                    "token id {bad} in window {unit} is outside the student's vocabulary of \
                     {student_vocab}"
                ),
            ));
        }
        student.extend(window.iter().map(|&t| i64::from(t)));
    }
    let teacher: Vec<i64> = match id_map {
        Some(map) => student
            .iter()
            .map(|&t| i64::from(map.new_to_old[t as usize]))
            .collect(),
        None => student.clone(),
    };
    if let Some(&bad) = teacher.iter().find(|&&t| t as usize >= teacher_vocab) {
        return Err(Error::mismatch(
            dataset,
            format!(
                "maps to teacher id {bad}, outside the teacher's vocabulary of {teacher_vocab}"
            ),
        ));
    }
    let shape = [n as i64, seq_len as i64 + 1];
    Ok(Calibration {
        student: Tensor::from_slice(&student)
            .view(shape)
            .to_kind(Kind::Int64),
        teacher: Tensor::from_slice(&teacher)
            .view(shape)
            .to_kind(Kind::Int64),
        seq_len,
        eos_id: manifest.eos_id,
    })
}
