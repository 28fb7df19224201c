//! Per-instance resource caps: linear memory, tables and instance counts,
//! with a record of what was refused so a failed job can say why.

use wasmtime::ResourceLimiter;

/// A [`ResourceLimiter`] with a memory cap that remembers refusals.
#[derive(Debug)]
pub struct InstanceLimits {
    memory_limit: usize,
    table_elements: usize,
    /// Set when a `memory.grow` was refused: the trap that usually follows
    /// (an allocation failure in the guest) is then reported as a memory cap.
    pub memory_refused: Option<usize>,
}

impl InstanceLimits {
    pub fn new(memory_limit: usize) -> Self {
        Self {
            memory_limit,
            table_elements: 100_000,
            memory_refused: None,
        }
    }

    pub fn memory_limit(&self) -> usize {
        self.memory_limit
    }
}

impl ResourceLimiter for InstanceLimits {
    fn memory_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired > self.memory_limit {
            self.memory_refused = Some(desired);
            return Ok(false);
        }
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        Ok(desired <= self.table_elements)
    }
}
