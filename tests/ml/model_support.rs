//! Shared helpers of the model tests: fixture paths and reading reference tensors.
#![allow(dead_code)]

use std::path::PathBuf;

use burn::backend::NdArray;
use burn::backend::ndarray::NdArrayDevice;
use burn::tensor::backend::Backend;
use burn::tensor::{Int, Tensor, TensorData};
use safetensors::{Dtype, SafeTensors};

/// The inference backend of the tests.
pub type B = NdArray<f32>;

/// Every fixture written by scripts/make_fixtures.py.
pub const FIXTURES: [&str; 4] = ["pre_ln", "post_ln_proj", "fp16_bin", "no_bias"];

pub fn device() -> NdArrayDevice {
    NdArrayDevice::Cpu
}

pub fn fixture_dir(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/opt")
        .join(name)
}

/// A tensor of reference.safetensors as f64 values plus its shape.
pub struct RefTensor {
    pub shape: Vec<usize>,
    pub values: Vec<f64>,
}

/// Reads the tensors of `<fixture>/reference.safetensors`.
pub struct Reference {
    bytes: Vec<u8>,
}

impl Reference {
    pub fn open(name: &str) -> Self {
        let bytes = std::fs::read(fixture_dir(name).join("reference.safetensors")).unwrap();
        Reference { bytes }
    }

    pub fn get(&self, key: &str) -> RefTensor {
        let file = SafeTensors::deserialize(&self.bytes).unwrap();
        let view = file.tensor(key).unwrap();
        let raw = view.data();
        let values = match view.dtype() {
            Dtype::F32 => raw
                .chunks_exact(4)
                .map(|b| f32::from_le_bytes(b.try_into().unwrap()) as f64)
                .collect(),
            Dtype::F64 => raw
                .chunks_exact(8)
                .map(|b| f64::from_le_bytes(b.try_into().unwrap()))
                .collect(),
            Dtype::I64 => raw
                .chunks_exact(8)
                .map(|b| i64::from_le_bytes(b.try_into().unwrap()) as f64)
                .collect(),
            other => panic!("unexpected dtype {other:?}"),
        };
        RefTensor {
            shape: view.shape().to_vec(),
            values,
        }
    }

    /// An int64 reference tensor `[batch, seq]` as a burn Int tensor.
    pub fn int2(&self, key: &str) -> Tensor<B, 2, Int> {
        self.int2_on::<B>(key, &device())
    }

    /// [`Reference::int2`] on any backend.
    pub fn int2_on<BB: Backend>(&self, key: &str, device: &BB::Device) -> Tensor<BB, 2, Int> {
        let t = self.get(key);
        let data: Vec<i64> = t.values.iter().map(|&v| v as i64).collect();
        Tensor::from_data(TensorData::new(data, [t.shape[0], t.shape[1]]), device)
    }
}

/// The values of a float tensor as f64.
pub fn values<const D: usize, BB: Backend>(t: Tensor<BB, D>) -> Vec<f64> {
    t.into_data().convert::<f64>().into_vec::<f64>().unwrap()
}
