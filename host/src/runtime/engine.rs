//! The process-wide wasmtime [`Engine`]: pooling allocator, epoch
//! interruption, and the thread that ticks epochs.

use std::sync::Arc;
use std::time::Duration;

use wasmtime::{Config, Engine, InstanceAllocationStrategy, PoolingAllocationConfig};

use super::RuntimeError;

/// How often the epoch advances. Running guests yield to the async executor
/// at each tick, so this bounds how late a timeout or cancel is noticed.
pub const EPOCH_TICK: Duration = Duration::from_millis(5);

/// Limits the engine is built with. Per-instance memory caps are enforced by
/// the store's limiter; these are the pool's upper bounds.
#[derive(Debug, Clone)]
pub struct EngineLimits {
    /// Instances that can be live at once across the process.
    pub max_instances: u32,
    /// Largest linear memory any instance may grow to.
    pub max_memory_bytes: u64,
    /// Use the pooling allocator (the default). Off means wasmtime's
    /// on-demand allocator: the baseline the benchmark compares against.
    pub pooling: bool,
}

impl Default for EngineLimits {
    fn default() -> Self {
        Self {
            max_instances: 64,
            max_memory_bytes: 4 << 30,
            pooling: true,
        }
    }
}

/// Build the engine and start its epoch ticker. The ticker holds a weak
/// reference, so it stops once the engine is dropped.
pub fn build(limits: &EngineLimits) -> Result<Engine, RuntimeError> {
    let mut pool = PoolingAllocationConfig::new();
    let n = limits.max_instances;
    // Components built by componentize-py or StarlingMonkey hold dozens of
    // core instances and tables and large function tables; size for them.
    pool.total_component_instances(n)
        .total_core_instances(n * 32)
        .total_memories(n * 4)
        .total_tables(n * 32)
        .total_stacks(n * 2)
        .max_core_instances_per_component(64)
        .max_memories_per_component(8)
        .max_tables_per_component(64)
        .max_tables_per_module(8)
        .max_memories_per_module(2)
        .table_elements(100_000)
        .max_component_instance_size(1 << 20)
        .max_core_instance_size(1 << 20)
        .max_memory_size(limits.max_memory_bytes as usize);

    let mut config = Config::new();
    config
        .wasm_component_model(true)
        .epoch_interruption(true)
        .allocation_strategy(if limits.pooling {
            InstanceAllocationStrategy::Pooling(pool)
        } else {
            InstanceAllocationStrategy::OnDemand
        })
        .max_wasm_stack(2 << 20)
        .async_stack_size(4 << 20)
        .parallel_compilation(true);
    let engine = Engine::new(&config).map_err(|e| RuntimeError::Engine(format!("{e:#}")))?;
    start_epoch_ticker(&engine);
    Ok(engine)
}

fn start_epoch_ticker(engine: &Engine) {
    let weak = engine.weak();
    let ticker = Arc::new(());
    std::thread::Builder::new()
        .name("wasmpod-epoch".into())
        .spawn(move || {
            let _keep = ticker;
            while let Some(engine) = weak.upgrade() {
                engine.increment_epoch();
                drop(engine);
                std::thread::sleep(EPOCH_TICK);
            }
        })
        .expect("spawning the epoch thread");
}
