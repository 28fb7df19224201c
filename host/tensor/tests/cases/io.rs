//! Upload, download, zeros, read-back conversions and copies.

use std::any::Any;
use std::sync::Arc;

use wasmpod_tensor::{DType, Device, MemoryAccount, Storage, Tensor};

use crate::assert_err;
use crate::support::*;

pub fn round_trip_every_dtype(dev: &Device) {
    let mut rng = Rng::new(1);
    for dtype in ALL {
        for shape in [
            vec![],
            vec![1],
            vec![7],
            vec![3, 5],
            vec![2, 3, 4],
            vec![2, 1, 3, 2],
        ] {
            let values = rng.values(dtype, numel(&shape), 4.0);
            let bytes = encode(dtype, &values);
            let t = dev.upload(dtype, &shape, &bytes).unwrap();
            assert_eq!(t.shape(), shape.as_slice());
            assert_eq!(t.dtype(), dtype);
            assert_eq!(t.numel(), numel(&shape));
            assert_eq!(dev.download(&t).unwrap(), bytes, "{dtype} {shape:?}");
        }
    }
}

pub fn scalars_and_empty_tensors(dev: &Device) {
    for dtype in ALL {
        let s = upload(dev, dtype, &[], &[3.0]);
        assert_eq!(s.rank(), 0);
        assert_eq!(read(dev, &s), vec![3.0]);
        for shape in [vec![0], vec![0, 3], vec![2, 0, 4]] {
            let e = dev.upload(dtype, &shape, &[]).unwrap();
            assert_eq!(e.shape(), shape.as_slice());
            assert!(dev.download(&e).unwrap().is_empty());
            assert!(dev.to_f32_vec(&e).unwrap().is_empty());
        }
    }
}

pub fn read_back_conversions(dev: &Device) {
    // to-f32 converts every dtype; to-i64 reads integers only.
    let values = [-2.0, 0.0, 1.5, 100.0];
    for dtype in FLOATS {
        let t = upload(dev, dtype, &[4], &values);
        assert_eq!(dev.to_f32_vec(&t).unwrap(), vec![-2.0, 0.0, 1.5, 100.0]);
        assert_err!(dev.to_i64_vec(&t), DTypeMismatch);
    }
    let ints = [0.0, 7.0, 42.0, 99.0];
    for dtype in INTS {
        let t = upload(dev, dtype, &[2, 2], &ints);
        assert_eq!(dev.to_f32_vec(&t).unwrap(), vec![0.0, 7.0, 42.0, 99.0]);
        assert_eq!(dev.to_i64_vec(&t).unwrap(), vec![0, 7, 42, 99]);
    }
    let wide = dev.upload_i64(&[3], &[i64::MIN, -1, i64::MAX]).unwrap();
    assert_eq!(dev.to_i64_vec(&wide).unwrap(), vec![i64::MIN, -1, i64::MAX]);
    let neg = upload(dev, DType::I32, &[2], &[-5.0, -2147483648.0]);
    assert_eq!(dev.to_i64_vec(&neg).unwrap(), vec![-5, -2147483648]);
    let f = dev.upload_f32(&[2], &[0.25, -8.0]).unwrap();
    assert_eq!(dev.to_f32_vec(&f).unwrap(), vec![0.25, -8.0]);
}

pub fn zeros_every_dtype(dev: &Device) {
    for dtype in ALL {
        for shape in [vec![], vec![5], vec![3, 0], vec![2, 3, 4]] {
            let z = dev.zeros(dtype, &shape).unwrap();
            assert_eq!((z.dtype(), z.shape()), (dtype, shape.as_slice()));
            let bytes = dev.download(&z).unwrap();
            assert_eq!(bytes.len(), numel(&shape) * dtype.size());
            assert!(bytes.iter().all(|&b| b == 0), "{dtype} zeros");
        }
    }
}

pub fn upload_errors(dev: &Device) {
    let msg = assert_err!(dev.upload(DType::F32, &[2, 3], &[0u8; 20]), ShapeMismatch);
    assert!(msg.contains("24") && msg.contains("20"), "{msg}");
    assert_err!(dev.upload(DType::I64, &[], &[0u8; 4]), ShapeMismatch);
    assert_err!(dev.upload(DType::U8, &[0], &[1]), ShapeMismatch);
    assert_err!(dev.upload_f32(&[3], &[1.0, 2.0]), ShapeMismatch);
    let huge = [usize::MAX / 2, 4];
    assert_err!(dev.upload(DType::F32, &huge, &[]), InvalidArgument);
    assert_err!(dev.zeros(DType::F32, &huge), InvalidArgument);
}

pub fn copy_between_devices(dev: &Device) {
    let other = Device::cpu(MemoryAccount::unlimited("other"));
    let mut rng = Rng::new(2);
    for dtype in ALL {
        let (t, values) = random(&other, &mut rng, dtype, &[3, 4], 2.0);
        let copy = dev.copy_from(&t, &other).unwrap();
        assert_eq!((copy.dtype(), copy.shape()), (dtype, &[3usize, 4][..]));
        assert_eq!(read(dev, &copy), values);
        let back = other.copy_from(&copy, dev).unwrap();
        assert_eq!(read(&other, &back), values);
    }
}

/// Storage of no backend: tensors built on it belong to no device here.
struct ForeignStorage;

impl Storage for ForeignStorage {
    fn as_any(&self) -> &dyn Any {
        self
    }
    fn len_bytes(&self) -> usize {
        16
    }
}

pub fn foreign_tensors_are_rejected(dev: &Device) {
    let foreign = Tensor::new(DType::F32, vec![2, 2], Arc::new(ForeignStorage));
    assert!(!dev.holds(&foreign));
    let mine = dev.zeros(DType::F32, &[2, 2]).unwrap();
    assert!(dev.holds(&mine));
    assert_err!(dev.download(&foreign), InvalidArgument);
    assert_err!(dev.to_f32_vec(&foreign), InvalidArgument);
    assert_err!(dev.add(&mine, &foreign), InvalidArgument);
    assert_err!(dev.matmul(&foreign, &mine), InvalidArgument);
    assert_err!(dev.softmax(&foreign, -1), InvalidArgument);
    assert_err!(
        dev.layer_norm(&mine, Some(&foreign), None, 1e-5),
        InvalidArgument
    );
    assert_err!(dev.concat(&[&mine, &foreign], 0), InvalidArgument);
    assert_err!(dev.copy_from(&foreign, dev), InvalidArgument);
    assert_err!(dev.reshape(&foreign, &[4]), InvalidArgument);
}
