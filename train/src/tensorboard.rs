//! Training metrics as TensorBoard event files (`RUN/tensorboard/events.out.tfevents.*`), so
//! `tensorboard --logdir RUN` shows a run while it trains.
//!
//! An event file is a TFRecord stream (each record: u64 length, masked CRC-32C of the length,
//! the bytes, masked CRC-32C of the bytes) of `tensorflow.Event` protocol buffers. Only the few
//! fields scalars need are written, encoded here by hand: `wall_time` (1, double), `step`
//! (2, int64), `file_version` (3, string), `summary` (5: repeated `value` (1) of `tag` (1,
//! string) and `simple_value` (2, float)) and `session_log` (6: `status` (1) = START).
//!
//! Every process start opens a new file. A resumed run first writes a START session log at its
//! first step: TensorBoard then drops the events of that step and later from older files (the
//! steps a killed run logged after its last checkpoint, which the resumed run trains again), as
//! PyTorch's `SummaryWriter(purge_step=…)` does.

use std::io::Write;
use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

use crate::error::{Error, Result};

pub const TENSORBOARD_DIR: &str = "tensorboard";

pub struct EventWriter {
    file: std::io::BufWriter<fs_err::File>,
}

impl EventWriter {
    /// A new event file in `dir` (created), for a run that continues after step `done_steps`.
    pub fn create(dir: &Path, done_steps: u64) -> Result<EventWriter> {
        fs_err::create_dir_all(dir).map_err(Error::Io)?;
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        let host = hostname();
        // The time and the pid keep the files of two starts within a second apart.
        let name = format!(
            "events.out.tfevents.{}.{host}.{}",
            now.as_secs(),
            std::process::id()
        );
        let path = dir.join(name);
        let file = std::io::BufWriter::new(fs_err::File::create(&path).map_err(Error::Io)?);
        tracing::debug!(path = %path.display(), "TensorBoard event file");
        let mut writer = EventWriter { file };
        let mut first = Event::new(done_steps + 1);
        first.bytes(3, b"brain.Event:2");
        writer.write(&first)?;
        if done_steps > 0 {
            let mut start = Event::new(done_steps + 1);
            start.bytes(6, &[0x08, 0x01]); // SessionLog { status: START }
            writer.write(&start)?;
        }
        writer.file.flush().map_err(Error::Io)?;
        Ok(writer)
    }

    /// Scalars at `step`, one event, flushed so that a watching TensorBoard sees them.
    pub fn scalars(&mut self, step: u64, values: &[(&str, f64)]) -> Result<()> {
        let mut summary = Vec::new();
        for (tag, value) in values {
            let mut v = Vec::new();
            put_bytes(&mut v, 1, tag.as_bytes());
            v.push(0x15); // field 2, fixed32
            v.extend_from_slice(&(*value as f32).to_le_bytes());
            put_bytes(&mut summary, 1, &v);
        }
        let mut event = Event::new(step);
        event.bytes(5, &summary);
        self.write(&event)?;
        self.file.flush().map_err(Error::Io)?;
        Ok(())
    }

    fn write(&mut self, event: &Event) -> Result<()> {
        write_record(&mut self.file, &event.0).map_err(Error::Io)
    }
}

/// One TFRecord: the length, its masked CRC, the data, its masked CRC.
fn write_record(file: &mut impl Write, data: &[u8]) -> std::io::Result<()> {
    let len = (data.len() as u64).to_le_bytes();
    file.write_all(&len)?;
    file.write_all(&masked_crc(&len).to_le_bytes())?;
    file.write_all(data)?;
    file.write_all(&masked_crc(data).to_le_bytes())
}

/// An encoded `tensorflow.Event` with its wall time and step.
struct Event(Vec<u8>);

impl Event {
    fn new(step: u64) -> Event {
        let wall = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_secs_f64();
        let mut b = vec![0x09]; // field 1, fixed64
        b.extend_from_slice(&wall.to_le_bytes());
        b.push(0x10); // field 2, varint
        put_varint(&mut b, step);
        Event(b)
    }

    /// A string or embedded message field.
    fn bytes(&mut self, field: u32, bytes: &[u8]) {
        put_bytes(&mut self.0, field, bytes);
    }
}

/// A length-delimited field (wire type 2).
fn put_bytes(out: &mut Vec<u8>, field: u32, bytes: &[u8]) {
    put_varint(out, u64::from(field << 3 | 2));
    put_varint(out, bytes.len() as u64);
    out.extend_from_slice(bytes);
}

fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

/// TFRecord's masked CRC-32C.
fn masked_crc(bytes: &[u8]) -> u32 {
    let crc = crc32c::crc32c(bytes);
    crc.rotate_right(15).wrapping_add(0xa282_ead8)
}

fn hostname() -> String {
    let name = fs_err::read_to_string("/proc/sys/kernel/hostname")
        .or_else(|_| std::env::var("HOSTNAME").map_err(std::io::Error::other))
        .unwrap_or_default();
    let name: String = name
        .trim()
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '_')
        .collect();
    if name.is_empty() { "host".into() } else { name }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_frame_and_checksum_as_tfrecord() {
        // CRC-32C check value, and the mask TFRecord applies.
        assert_eq!(crc32c::crc32c(b"123456789"), 0xe306_9283);
        let dir = tempfile::tempdir().unwrap();
        let mut w = EventWriter::create(dir.path(), 0).unwrap();
        w.scalars(3, &[("train/loss", 2.5)]).unwrap();
        drop(w);
        let file = fs_err::read_dir(dir.path())
            .unwrap()
            .next()
            .unwrap()
            .unwrap();
        assert!(
            file.file_name()
                .to_string_lossy()
                .starts_with("events.out.tfevents.")
        );
        let bytes = fs_err::read(file.path()).unwrap();
        let mut records = Vec::new();
        let mut at = 0;
        while at < bytes.len() {
            let len = u64::from_le_bytes(bytes[at..at + 8].try_into().unwrap()) as usize;
            let len_crc = u32::from_le_bytes(bytes[at + 8..at + 12].try_into().unwrap());
            assert_eq!(len_crc, masked_crc(&bytes[at..at + 8]));
            let data = &bytes[at + 12..at + 12 + len];
            let crc = u32::from_le_bytes(bytes[at + 12 + len..at + 16 + len].try_into().unwrap());
            assert_eq!(crc, masked_crc(data));
            records.push(data.to_vec());
            at += 16 + len;
        }
        assert_eq!(records.len(), 2);
        assert!(records[0].ends_with(b"brain.Event:2"));
        // step 3, then summary { value { tag: "train/loss", simple_value: 2.5 } }.
        let scalar = &records[1];
        assert_eq!(&scalar[9..11], &[0x10, 3]);
        let mut value = vec![0x0a, 10];
        value.extend_from_slice(b"train/loss");
        value.push(0x15);
        value.extend_from_slice(&2.5f32.to_le_bytes());
        let mut summary = vec![0x0a, value.len() as u8];
        summary.extend_from_slice(&value);
        let mut expected = vec![0x2a, summary.len() as u8];
        expected.extend_from_slice(&summary);
        assert_eq!(&scalar[11..], &expected[..]);
    }

    #[test]
    fn varints_are_little_endian_base_128() {
        let mut b = Vec::new();
        put_varint(&mut b, 300);
        assert_eq!(b, [0xac, 0x02]);
    }
}
