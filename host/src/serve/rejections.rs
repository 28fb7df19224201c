//! Requests the HTTP edge refused past a rate limit, counted by endpoint
//! and operation for `/v2/{id}/health` and `/metrics`.

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;

/// Rejections by (endpoint, operation).
#[derive(Default)]
pub struct Rejections(Mutex<HashMap<(String, &'static str), u64>>);

impl Rejections {
    pub fn count(&self, endpoint: &str, operation: &'static str) {
        *self
            .0
            .lock()
            .expect("rejections lock")
            .entry((endpoint.to_string(), operation))
            .or_default() += 1;
    }

    /// One endpoint's, by operation.
    pub fn of(&self, endpoint: &str) -> BTreeMap<String, u64> {
        self.0
            .lock()
            .expect("rejections lock")
            .iter()
            .filter(|((e, _), _)| e == endpoint)
            .map(|((_, op), n)| (op.to_string(), *n))
            .collect()
    }

    /// Every endpoint's, sorted.
    pub fn all(&self) -> Vec<(String, &'static str, u64)> {
        let mut out: Vec<_> = self
            .0
            .lock()
            .expect("rejections lock")
            .iter()
            .map(|((e, op), n)| (e.clone(), *op, *n))
            .collect();
        out.sort();
        out
    }

    /// Forget a deleted endpoint's.
    pub fn forget(&self, endpoint: &str) {
        self.0
            .lock()
            .expect("rejections lock")
            .retain(|(e, _), _| e != endpoint);
    }
}
