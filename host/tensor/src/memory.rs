//! Per-worker device-memory accounting against a quota.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::TensorError;

/// Bytes allocated by one worker (or by a slice's shared model cache)
/// against a limit. Every tensor holds a [`Reservation`] that gives its bytes
/// back when the last handle to the tensor's storage drops.
#[derive(Debug)]
pub struct MemoryAccount {
    name: String,
    limit: u64,
    used: AtomicU64,
}

impl MemoryAccount {
    /// An account called `name` (used in error messages) with `limit` bytes.
    pub fn new(name: impl Into<String>, limit: u64) -> Arc<Self> {
        Arc::new(Self {
            name: name.into(),
            limit,
            used: AtomicU64::new(0),
        })
    }

    /// An account with no limit (u64::MAX).
    pub fn unlimited(name: impl Into<String>) -> Arc<Self> {
        Self::new(name, u64::MAX)
    }

    pub fn limit(&self) -> u64 {
        self.limit
    }

    pub fn used(&self) -> u64 {
        self.used.load(Ordering::Relaxed)
    }

    /// Reserve `bytes`, or fail with `QuotaExceeded` leaving the account as
    /// it was.
    pub fn reserve(self: &Arc<Self>, bytes: u64) -> Result<Reservation, TensorError> {
        let mut current = self.used.load(Ordering::Relaxed);
        loop {
            let next = current.checked_add(bytes).filter(|n| *n <= self.limit).ok_or_else(|| {
                TensorError::QuotaExceeded(format!(
                    "allocating {bytes} bytes would exceed the {} quota of {} bytes ({current} in use); free tensors or ask for a larger quota",
                    self.name, self.limit
                ))
            })?;
            match self.used.compare_exchange_weak(
                current,
                next,
                Ordering::AcqRel,
                Ordering::Relaxed,
            ) {
                Ok(_) => {
                    return Ok(Reservation {
                        account: Arc::clone(self),
                        bytes,
                    });
                }
                Err(seen) => current = seen,
            }
        }
    }
}

/// Bytes held on a [`MemoryAccount`]; released on drop.
#[derive(Debug)]
pub struct Reservation {
    account: Arc<MemoryAccount>,
    bytes: u64,
}

impl Reservation {
    pub fn bytes(&self) -> u64 {
        self.bytes
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        self.account.used.fetch_sub(self.bytes, Ordering::AcqRel);
    }
}
