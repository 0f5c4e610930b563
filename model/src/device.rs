//! Where a model runs and in what dtype, as flags and config files spell them (`--device
//! cuda:1`, `precision = "bf16"`). Parsed once, into these enums, by clap and by serde alike;
//! tinyforge-train turns them into libtorch's device and dtype (`torch_device`,
//! `compute_kind`). They live here, without libtorch, because the pure-Rust eval and the
//! binary built without `--features train` read `--device` too.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::error::Error;

/// A device: `auto` (CUDA when libtorch sees a GPU, else the CPU), `cpu`, `cuda` (= `cuda:0`)
/// or `cuda:N`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Device {
    #[default]
    Auto,
    Cpu,
    Cuda(usize),
}

impl Device {
    /// The spellings, for help texts and errors.
    pub const ALLOWED: &'static str = "auto, cpu, cuda, cuda:N";
}

impl FromStr for Device {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self, Error> {
        match s {
            "auto" => Ok(Device::Auto),
            "cpu" => Ok(Device::Cpu),
            "cuda" => Ok(Device::Cuda(0)),
            _ => s
                .strip_prefix("cuda:")
                .and_then(|i| i.parse().ok())
                .map(Device::Cuda)
                .ok_or_else(|| unknown("device", s, Device::ALLOWED)),
        }
    }
}

impl fmt::Display for Device {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Device::Auto => f.write_str("auto"),
            Device::Cpu => f.write_str("cpu"),
            Device::Cuda(i) => write!(f, "cuda:{i}"),
        }
    }
}

/// The compute dtype: `auto` (bf16 on CUDA, fp32 on the CPU), `bf16` or `fp32`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Precision {
    #[default]
    Auto,
    Bf16,
    Fp32,
}

impl Precision {
    /// The spellings, for help texts and errors.
    pub const ALLOWED: &'static str = "auto, bf16, fp32";
}

impl FromStr for Precision {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self, Error> {
        match s {
            "auto" => Ok(Precision::Auto),
            "bf16" => Ok(Precision::Bf16),
            "fp32" => Ok(Precision::Fp32),
            _ => Err(unknown("precision", s, Precision::ALLOWED)),
        }
    }
}

impl fmt::Display for Precision {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Precision::Auto => "auto",
            Precision::Bf16 => "bf16",
            Precision::Fp32 => "fp32",
        })
    }
}

fn unknown(what: &'static str, value: &str, allowed: &'static str) -> Error {
    Error::UnknownValue {
        what,
        value: value.to_owned(),
        allowed,
    }
}

// Serde writes and reads the same strings as the flags, so a TOML file says `device = "cuda:1"`
// and a wrong value is refused with the allowed spellings (and toml's line and key).
fn parsed<'de, D: Deserializer<'de>, T: FromStr<Err = Error>>(
    deserializer: D,
) -> Result<T, D::Error> {
    String::deserialize(deserializer)?
        .parse()
        .map_err(serde::de::Error::custom)
}

impl Serialize for Device {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Device {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        parsed(deserializer)
    }
}

impl Serialize for Precision {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Precision {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        parsed(deserializer)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, PartialEq, Deserialize, Serialize)]
    struct File {
        device: Device,
        precision: Precision,
    }

    #[test]
    fn every_spelling_parses_and_prints_back() {
        for (text, device) in [
            ("auto", Device::Auto),
            ("cpu", Device::Cpu),
            ("cuda:0", Device::Cuda(0)),
            ("cuda:3", Device::Cuda(3)),
        ] {
            assert_eq!(text.parse::<Device>().unwrap(), device);
            assert_eq!(device.to_string(), text);
        }
        assert_eq!("cuda".parse::<Device>().unwrap(), Device::Cuda(0));
        for (text, precision) in [
            ("auto", Precision::Auto),
            ("bf16", Precision::Bf16),
            ("fp32", Precision::Fp32),
        ] {
            assert_eq!(text.parse::<Precision>().unwrap(), precision);
            assert_eq!(precision.to_string(), text);
        }
    }

    #[test]
    fn toml_and_json_hold_the_flag_spellings() {
        let file: File = toml::from_str("device = \"cuda:2\"\nprecision = \"bf16\"").unwrap();
        assert_eq!(
            file,
            File {
                device: Device::Cuda(2),
                precision: Precision::Bf16
            }
        );
        let json = serde_json::to_string(&file).unwrap();
        assert_eq!(json, r#"{"device":"cuda:2","precision":"bf16"}"#);
        assert_eq!(serde_json::from_str::<File>(&json).unwrap(), file);
        let file: File = toml::from_str("device = \"cuda\"\nprecision = \"auto\"").unwrap();
        assert_eq!(file.device, Device::Cuda(0));
    }

    #[test]
    fn a_wrong_spelling_names_the_allowed_ones() {
        for bad in ["gpu", "CPU", "cuda:", "cuda:x", "cuda:-1", ""] {
            let message = bad.parse::<Device>().unwrap_err().to_string();
            assert_eq!(
                message,
                format!("unknown device `{bad}` (expected one of: auto, cpu, cuda, cuda:N)")
            );
        }
        let message = "fp16".parse::<Precision>().unwrap_err().to_string();
        assert_eq!(
            message,
            "unknown precision `fp16` (expected one of: auto, bf16, fp32)"
        );
        // In a file, toml adds the line and the key.
        let error = toml::from_str::<File>("device = \"cpu\"\nprecision = \"half\"").unwrap_err();
        let message = error.to_string();
        assert!(message.contains("line 2"), "{message}");
        assert!(message.contains("precision = \"half\""), "{message}");
        assert!(
            message.contains("expected one of: auto, bf16, fp32"),
            "{message}"
        );
    }
}
