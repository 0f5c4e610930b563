//! The one place where the spellings of `--device` and `--precision` ([`Device`] and
//! [`Precision`], parsed by tinyforge-model without libtorch) become libtorch's device and
//! dtype, and back for reports.

use tinyforge_model::{Device, Precision};

/// libtorch's device for `device`: `auto` is the first GPU when libtorch sees one, else the CPU.
pub fn torch_device(device: Device) -> tch::Device {
    match device {
        Device::Auto => tch::Device::cuda_if_available(),
        Device::Cpu => tch::Device::Cpu,
        Device::Cuda(index) => tch::Device::Cuda(index),
    }
}

/// The compute dtype of `precision` on `device`: `auto` is bf16 on CUDA and fp32 on the CPU.
pub fn compute_kind(precision: Precision, device: tch::Device) -> tch::Kind {
    match precision {
        Precision::Auto if device.is_cuda() => tch::Kind::BFloat16,
        Precision::Auto | Precision::Fp32 => tch::Kind::Float,
        Precision::Bf16 => tch::Kind::BFloat16,
    }
}

/// The spelling of a libtorch device (never `auto`): what reports and run records say.
pub fn device_name(device: tch::Device) -> Device {
    match device {
        tch::Device::Cuda(index) => Device::Cuda(index),
        _ => Device::Cpu,
    }
}

/// The spelling of a compute dtype (never `auto`).
pub fn precision_name(kind: tch::Kind) -> Precision {
    match kind {
        tch::Kind::BFloat16 => Precision::Bf16,
        _ => Precision::Fp32,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spellings_resolve_to_libtorch_and_back() {
        assert_eq!(torch_device(Device::Cpu), tch::Device::Cpu);
        assert_eq!(torch_device(Device::Cuda(2)), tch::Device::Cuda(2));
        assert_eq!(torch_device(Device::Auto), tch::Device::cuda_if_available());
        for device in [Device::Cpu, Device::Cuda(0), Device::Cuda(5)] {
            assert_eq!(device_name(torch_device(device)), device);
        }
        let cpu = tch::Device::Cpu;
        let gpu = tch::Device::Cuda(0);
        assert_eq!(compute_kind(Precision::Auto, cpu), tch::Kind::Float);
        assert_eq!(compute_kind(Precision::Auto, gpu), tch::Kind::BFloat16);
        assert_eq!(compute_kind(Precision::Bf16, cpu), tch::Kind::BFloat16);
        assert_eq!(compute_kind(Precision::Fp32, gpu), tch::Kind::Float);
        for precision in [Precision::Bf16, Precision::Fp32] {
            assert_eq!(precision_name(compute_kind(precision, gpu)), precision);
        }
    }
}
