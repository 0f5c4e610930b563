//! The GGUF v3 container as llama.cpp's `gguf.h` defines it: a header (magic, version, tensor
//! and key counts), typed metadata key/values, one info record per tensor (name, dimensions
//! fastest first, ggml type, offset into the data section), then the tensor data, each tensor
//! starting at a multiple of the alignment. Also the element encodings the exporter writes:
//! F32, F16, BF16 and Q8_0.

use std::io::{self, Write};

/// `general.alignment`'s default, which the exporter also writes explicitly.
pub(crate) const ALIGNMENT: u64 = 32;
/// Values per Q8_0 block (`QK8_0`).
pub(crate) const Q8_0_BLOCK: usize = 32;
/// Bytes per Q8_0 block: an f16 scale and 32 int8 values (`block_q8_0`).
const Q8_0_BLOCK_BYTES: usize = 2 + Q8_0_BLOCK;

const MAGIC: &[u8; 4] = b"GGUF";
const VERSION: u32 = 3;

/// `enum gguf_type`: the metadata value types this writer uses.
mod value_type {
    pub const U32: u32 = 4;
    pub const I32: u32 = 5;
    pub const F32: u32 = 6;
    pub const BOOL: u32 = 7;
    pub const STRING: u32 = 8;
    pub const ARRAY: u32 = 9;
}

/// A metadata value.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Value {
    U32(u32),
    F32(f32),
    Bool(bool),
    Str(String),
    Strs(Vec<String>),
    I32s(Vec<i32>),
}

/// The ggml tensor types written here (`enum ggml_type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum GgmlType {
    F32 = 0,
    F16 = 1,
    Q8_0 = 8,
    BF16 = 30,
}

impl GgmlType {
    pub(crate) fn id(self) -> u32 {
        self as u32
    }

    /// Bytes of a tensor of `elements` values; Q8_0 needs whole blocks (the caller checks).
    pub(crate) fn bytes(self, elements: u64) -> u64 {
        match self {
            GgmlType::F32 => 4 * elements,
            GgmlType::F16 | GgmlType::BF16 => 2 * elements,
            GgmlType::Q8_0 => elements / Q8_0_BLOCK as u64 * Q8_0_BLOCK_BYTES as u64,
        }
    }

    /// `values` (row-major, rows a multiple of the block size for Q8_0) in this encoding.
    pub(crate) fn encode(self, values: &[f32]) -> Vec<u8> {
        match self {
            GgmlType::F32 => values.iter().flat_map(|v| v.to_le_bytes()).collect(),
            GgmlType::F16 => values
                .iter()
                .flat_map(|v| half::f16::from_f32(*v).to_le_bytes())
                .collect(),
            GgmlType::BF16 => values
                .iter()
                .flat_map(|v| half::bf16::from_f32(*v).to_le_bytes())
                .collect(),
            GgmlType::Q8_0 => quantize_q8_0(values),
        }
    }
}

/// One tensor's info record.
#[derive(Debug, Clone)]
pub(crate) struct TensorInfo {
    pub name: String,
    /// Dimensions, fastest-varying first (`ne[0]` is a row's length).
    pub dims: Vec<u64>,
    pub ty: GgmlType,
    /// From the start of the data section; a multiple of [`ALIGNMENT`].
    pub offset: u64,
}

/// `n` rounded up to a multiple of [`ALIGNMENT`].
pub(crate) fn align(n: u64) -> u64 {
    n.div_ceil(ALIGNMENT) * ALIGNMENT
}

/// Q8_0 as ggml's `quantize_row_q8_0_ref`: per block of 32, `d = max|x| / 127` stored as f16,
/// then `round(x / d)` as int8 (zero for an all-zero block).
pub(crate) fn quantize_q8_0(values: &[f32]) -> Vec<u8> {
    let mut out = Vec::with_capacity(values.len() / Q8_0_BLOCK * Q8_0_BLOCK_BYTES);
    for block in values.chunks(Q8_0_BLOCK) {
        let amax = block.iter().fold(0.0f32, |m, v| m.max(v.abs()));
        let d = amax / 127.0;
        let inverse = if d == 0.0 { 0.0 } else { 1.0 / d };
        out.extend_from_slice(&half::f16::from_f32(d).to_le_bytes());
        // `as` saturates, and |x / d| <= 127 anyway; f32::round rounds half away from zero
        // like C's roundf.
        out.extend(block.iter().map(|v| (v * inverse).round() as i8 as u8));
    }
    out
}

/// The inverse of [`quantize_q8_0`] (for tests and checks).
#[cfg(test)]
pub(crate) fn dequantize_q8_0(bytes: &[u8]) -> Vec<f32> {
    bytes
        .chunks_exact(Q8_0_BLOCK_BYTES)
        .flat_map(|block| {
            let d = half::f16::from_le_bytes([block[0], block[1]]).to_f32();
            block[2..].iter().map(move |q| f32::from(*q as i8) * d)
        })
        .collect()
}

fn write_string(w: &mut impl Write, s: &str) -> io::Result<()> {
    w.write_all(&(s.len() as u64).to_le_bytes())?;
    w.write_all(s.as_bytes())
}

fn write_value(w: &mut impl Write, value: &Value) -> io::Result<()> {
    let ty = |w: &mut dyn Write, t: u32| w.write_all(&t.to_le_bytes());
    match value {
        Value::U32(x) => {
            ty(w, value_type::U32)?;
            w.write_all(&x.to_le_bytes())
        }
        Value::F32(x) => {
            ty(w, value_type::F32)?;
            w.write_all(&x.to_le_bytes())
        }
        Value::Bool(x) => {
            ty(w, value_type::BOOL)?;
            w.write_all(&[u8::from(*x)])
        }
        Value::Str(s) => {
            ty(w, value_type::STRING)?;
            write_string(w, s)
        }
        Value::Strs(items) => {
            ty(w, value_type::ARRAY)?;
            ty(w, value_type::STRING)?;
            w.write_all(&(items.len() as u64).to_le_bytes())?;
            items.iter().try_for_each(|s| write_string(w, s))
        }
        Value::I32s(items) => {
            ty(w, value_type::ARRAY)?;
            ty(w, value_type::I32)?;
            w.write_all(&(items.len() as u64).to_le_bytes())?;
            items.iter().try_for_each(|x| w.write_all(&x.to_le_bytes()))
        }
    }
}

/// Everything before the tensor data: header, metadata, tensor infos and the padding up to the
/// data section (which then starts at a multiple of [`ALIGNMENT`]).
pub(crate) fn header(metadata: &[(String, Value)], tensors: &[TensorInfo]) -> io::Result<Vec<u8>> {
    let mut w = Vec::new();
    w.write_all(MAGIC)?;
    w.write_all(&VERSION.to_le_bytes())?;
    w.write_all(&(tensors.len() as u64).to_le_bytes())?;
    w.write_all(&(metadata.len() as u64).to_le_bytes())?;
    for (key, value) in metadata {
        write_string(&mut w, key)?;
        write_value(&mut w, value)?;
    }
    for t in tensors {
        write_string(&mut w, &t.name)?;
        w.write_all(&(t.dims.len() as u32).to_le_bytes())?;
        for d in &t.dims {
            w.write_all(&d.to_le_bytes())?;
        }
        w.write_all(&t.ty.id().to_le_bytes())?;
        w.write_all(&t.offset.to_le_bytes())?;
    }
    w.resize(align(w.len() as u64) as usize, 0);
    Ok(w)
}

/// A GGUF file read back, for the tests of this module and the exporter's.
#[cfg(test)]
pub(crate) mod read {
    use super::*;

    #[derive(Debug)]
    pub(crate) struct Parsed {
        pub metadata: Vec<(String, Value)>,
        pub tensors: Vec<TensorInfo>,
        pub data_start: usize,
    }

    struct Cursor<'a>(&'a [u8], usize);

    impl Cursor<'_> {
        fn take(&mut self, n: usize) -> &[u8] {
            let s = &self.0[self.1..self.1 + n];
            self.1 += n;
            s
        }
        fn u32(&mut self) -> u32 {
            u32::from_le_bytes(self.take(4).try_into().unwrap())
        }
        fn u64(&mut self) -> u64 {
            u64::from_le_bytes(self.take(8).try_into().unwrap())
        }
        fn string(&mut self) -> String {
            let n = self.u64() as usize;
            String::from_utf8(self.take(n).to_vec()).unwrap()
        }
        fn value(&mut self, ty: u32) -> Value {
            match ty {
                value_type::U32 => Value::U32(self.u32()),
                value_type::F32 => Value::F32(f32::from_bits(self.u32())),
                value_type::BOOL => Value::Bool(self.take(1)[0] != 0),
                value_type::STRING => Value::Str(self.string()),
                value_type::ARRAY => {
                    let inner = self.u32();
                    let n = self.u64() as usize;
                    match inner {
                        value_type::STRING => Value::Strs((0..n).map(|_| self.string()).collect()),
                        value_type::I32 => Value::I32s((0..n).map(|_| self.u32() as i32).collect()),
                        other => panic!("array of type {other}"),
                    }
                }
                other => panic!("value type {other}"),
            }
        }
    }

    pub(crate) fn parse(bytes: &[u8]) -> Parsed {
        let mut c = Cursor(bytes, 0);
        assert_eq!(c.take(4), MAGIC);
        assert_eq!(c.u32(), VERSION);
        let (n_tensors, n_kv) = (c.u64(), c.u64());
        let metadata = (0..n_kv)
            .map(|_| {
                let key = c.string();
                let ty = c.u32();
                (key, c.value(ty))
            })
            .collect();
        let tensors = (0..n_tensors)
            .map(|_| {
                let name = c.string();
                let n_dims = c.u32();
                let dims = (0..n_dims).map(|_| c.u64()).collect();
                let ty = match c.u32() {
                    0 => GgmlType::F32,
                    1 => GgmlType::F16,
                    8 => GgmlType::Q8_0,
                    30 => GgmlType::BF16,
                    other => panic!("ggml type {other}"),
                };
                TensorInfo {
                    name,
                    dims,
                    ty,
                    offset: c.u64(),
                }
            })
            .collect();
        Parsed {
            metadata,
            tensors,
            data_start: align(c.1 as u64) as usize,
        }
    }

    impl Parsed {
        pub(crate) fn get(&self, key: &str) -> Option<&Value> {
            self.metadata.iter().find(|(k, _)| k == key).map(|(_, v)| v)
        }

        pub(crate) fn tensor(&self, name: &str) -> &TensorInfo {
            self.tensors.iter().find(|t| t.name == name).unwrap()
        }

        /// The values of tensor `name` as f32.
        pub(crate) fn values(&self, bytes: &[u8], name: &str) -> Vec<f32> {
            let t = self.tensor(name);
            let n: u64 = t.dims.iter().product();
            let start = self.data_start + t.offset as usize;
            let data = &bytes[start..start + t.ty.bytes(n) as usize];
            let float = |dtype| crate::weights::floats_of(dtype, data).expect("a float dtype");
            match t.ty {
                GgmlType::F32 => float(safetensors::Dtype::F32),
                GgmlType::F16 => float(safetensors::Dtype::F16),
                GgmlType::BF16 => float(safetensors::Dtype::BF16),
                GgmlType::Q8_0 => dequantize_q8_0(data),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn q8_0_blocks_round_trip_within_half_a_step() {
        // Two blocks: a ramp with both signs and an outlier, and an all-zero block.
        let mut values: Vec<f32> = (0..32).map(|i| (i as f32 - 15.5) * 0.013).collect();
        values[7] = -1.9;
        values.extend([0.0; 32]);
        let bytes = quantize_q8_0(&values);
        assert_eq!(bytes.len(), 2 * 34);
        assert_eq!(GgmlType::Q8_0.bytes(64), 68);
        // The scale comes first, as f16: max|x| / 127.
        let d = half::f16::from_le_bytes([bytes[0], bytes[1]]).to_f32();
        assert!((d - 1.9 / 127.0).abs() < 1e-5, "{d}");
        // The outlier is the full int8 step.
        assert_eq!(bytes[2 + 7] as i8, -127);
        let back = dequantize_q8_0(&bytes);
        for (x, y) in values.iter().zip(&back) {
            // Half a quantization step, plus the f16 rounding of the scale (at most 127 steps
            // of its 2^-11 relative error).
            assert!((x - y).abs() <= d * 0.5 + 1.9 / 2048.0, "{x} vs {y}");
        }
        assert!(back[32..].iter().all(|v| *v == 0.0));
    }

    #[test]
    fn header_is_aligned_and_reads_back() {
        let metadata = vec![
            (
                "general.architecture".to_string(),
                Value::Str("llama".into()),
            ),
            ("general.alignment".to_string(), Value::U32(32)),
            ("x.eps".to_string(), Value::F32(1e-5)),
            ("x.flag".to_string(), Value::Bool(false)),
            (
                "x.tokens".to_string(),
                Value::Strs(vec!["a".into(), "Ġb".into()]),
            ),
            ("x.types".to_string(), Value::I32s(vec![1, 3])),
        ];
        let tensors = vec![
            TensorInfo {
                name: "a.weight".into(),
                dims: vec![3, 2],
                ty: GgmlType::F32,
                offset: 0,
            },
            TensorInfo {
                name: "b.weight".into(),
                dims: vec![32, 1],
                ty: GgmlType::Q8_0,
                offset: align(24),
            },
        ];
        let bytes = header(&metadata, &tensors).unwrap();
        assert_eq!(&bytes[..4], b"GGUF");
        assert_eq!(bytes[4..8], 3u32.to_le_bytes());
        assert_eq!(bytes[8..16], 2u64.to_le_bytes());
        assert_eq!(bytes[16..24], 6u64.to_le_bytes());
        // The first key: its length, then its bytes, then the string type and the value.
        assert_eq!(bytes[24..32], 20u64.to_le_bytes());
        assert_eq!(&bytes[32..52], b"general.architecture");
        assert_eq!(bytes[52..56], 8u32.to_le_bytes());
        assert_eq!(bytes.len() % 32, 0);
        let parsed = read::parse(&bytes);
        assert_eq!(parsed.metadata, metadata);
        assert_eq!(parsed.data_start, bytes.len());
        assert_eq!(parsed.tensors[1].offset, 32);
        assert_eq!(parsed.tensors[1].dims, [32, 1]);
        assert_eq!(parsed.tensors[1].ty, GgmlType::Q8_0);
    }
}
