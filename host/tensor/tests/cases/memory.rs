//! Quota accounting: results are charged before they exist, failures leave
//! the account as it was, and dropping tensors gives the bytes back.

use wasmpod_tensor::{DType, MemoryAccount};

use crate::DeviceMaker;
use crate::assert_err;
use crate::support::*;

pub fn quota_exceeded_leaves_account_unchanged(make: DeviceMaker) {
    let account = MemoryAccount::new("tiny", 100);
    let dev = make(account.clone());
    let a = dev.zeros(DType::F32, &[20]).unwrap(); // 80 bytes
    assert_eq!(account.used(), 80);
    let msg = assert_err!(dev.zeros(DType::F32, &[6]), QuotaExceeded);
    assert!(
        msg.contains("tiny") && msg.contains("100") && msg.contains("24"),
        "{msg}"
    );
    assert_eq!(account.used(), 80);
    assert_err!(dev.upload(DType::U8, &[21], &[0; 21]), QuotaExceeded);
    assert_err!(dev.scale(&a, 2.0, 0.0), QuotaExceeded);
    assert_err!(
        dev.permute(&dev.reshape(&a, &[4, 5]).unwrap(), &[1, 0]),
        QuotaExceeded
    );
    assert_err!(dev.top_k(&a, 10), QuotaExceeded);
    assert_eq!(account.used(), 80);
    // What still fits succeeds.
    let b = dev.zeros(DType::I32, &[5]).unwrap();
    assert_eq!(account.used(), 100);
    drop((a, b));
    assert_eq!(account.used(), 0);
}

pub fn dropping_tensors_returns_bytes(make: DeviceMaker) {
    let account = MemoryAccount::new("drops", 1 << 20);
    let dev = make(account.clone());
    let a = dev.zeros(DType::F32, &[10, 10]).unwrap();
    let r = dev.reshape(&a, &[100]).unwrap();
    let c = r.clone();
    assert_eq!(account.used(), 400);
    drop(a);
    drop(r);
    assert_eq!(account.used(), 400, "a clone still holds the storage");
    drop(c);
    assert_eq!(account.used(), 0);
    for dtype in ALL {
        let t = dev.zeros(dtype, &[3, 7]).unwrap();
        assert_eq!(account.used(), 21 * dtype.size() as u64);
        drop(t);
        assert_eq!(account.used(), 0);
    }
}

pub fn every_op_charges_its_result(make: DeviceMaker) {
    let account = MemoryAccount::new("ops", 1 << 20);
    let dev = make(account.clone());
    let a = dev.upload_f32(&[4, 6], &[0.5; 24]).unwrap();
    let w = dev.upload_f32(&[6], &[1.0; 6]).unwrap();
    let idx = dev.upload_i64(&[3], &[0, 1, 3]).unwrap();
    let base = account.used();
    assert_eq!(base, 96 + 24 + 24);
    let charged = |t: wasmpod_tensor::Tensor, bytes: u64| {
        assert_eq!(account.used(), base + bytes, "{t:?}");
        drop(t);
        assert_eq!(account.used(), base, "dropped");
    };
    charged(
        dev.matmul(&a, &dev.reshape(&w, &[6, 1]).unwrap()).unwrap(),
        16,
    );
    charged(dev.add(&a, &w).unwrap(), 96);
    charged(dev.relu(&a).unwrap(), 96);
    charged(dev.scale(&a, 1.0, 1.0).unwrap(), 96);
    charged(dev.softmax(&a, 0).unwrap(), 96);
    charged(dev.layer_norm(&a, Some(&w), Some(&w), 1e-5).unwrap(), 96);
    charged(dev.rms_norm(&a, Some(&w), 1e-5).unwrap(), 96);
    charged(dev.gather(&a, &idx).unwrap(), 72);
    charged(dev.transpose(&a, 0, 1).unwrap(), 96);
    charged(dev.slice(&a, 1, 0, 2).unwrap(), 32);
    charged(dev.concat(&[&a, &a], 0).unwrap(), 192);
    charged(dev.sum(&a, 1, false).unwrap(), 16);
    charged(dev.cast(&a, DType::F16).unwrap(), 48);
    charged(dev.argmax(&a, 1).unwrap(), 32);
    let (v, i) = dev.top_k(&a, 2).unwrap();
    assert_eq!(account.used(), base + 32 + 64);
    drop((v, i));
    assert_eq!(account.used(), base);
}

pub fn shared_weights_charge_the_reader(make: DeviceMaker) {
    // Weights uploaded once on a shared account, read by a worker's device.
    let shared = MemoryAccount::new("model-cache", 1 << 20);
    let worker = MemoryAccount::new("worker", 1 << 20);
    let cache = make(shared.clone());
    let dev = make(worker.clone());
    let weight = cache
        .upload_f32(&[3, 2], &[1.0, 2.0, 3.0, 4.0, 5.0, 6.0])
        .unwrap();
    assert_eq!((shared.used(), worker.used()), (24, 0));
    let x = dev.upload_f32(&[1, 3], &[1.0, 1.0, 1.0]).unwrap();
    let y = dev.matmul(&x, &weight).unwrap();
    assert_eq!(dev.to_f32_vec(&y).unwrap(), vec![9.0, 12.0]);
    assert_eq!((shared.used(), worker.used()), (24, 12 + 8));
    let copy = dev.copy_from(&weight, &cache).unwrap();
    assert_eq!((shared.used(), worker.used()), (24, 12 + 8 + 24));
    drop((x, y, copy));
    assert_eq!((shared.used(), worker.used()), (24, 0));
}

pub fn failed_ops_leave_account_unchanged(make: DeviceMaker) {
    let account = MemoryAccount::new("failures", 1 << 16);
    let dev = make(account.clone());
    let a = dev.zeros(DType::F32, &[4, 4]).unwrap();
    let b = dev.zeros(DType::F32, &[3, 3]).unwrap();
    let before = account.used();
    assert_err!(dev.matmul(&a, &b), ShapeMismatch);
    assert_err!(dev.add(&a, &b), ShapeMismatch);
    assert_err!(
        dev.gather(&a, &dev.upload_i64(&[1], &[9]).unwrap()),
        InvalidArgument
    );
    assert_err!(
        dev.div(
            &dev.upload_i64(&[1], &[1]).unwrap(),
            &dev.upload_i64(&[1], &[0]).unwrap()
        ),
        InvalidArgument
    );
    assert_eq!(account.used(), before);
    // A product too large for the quota fails without charging anything.
    let big = dev.zeros(DType::F32, &[128, 1]).unwrap();
    let row = dev.zeros(DType::F32, &[1, 128]).unwrap();
    let before = account.used();
    assert_err!(dev.matmul(&big, &row), QuotaExceeded);
    assert_eq!(account.used(), before);
}
