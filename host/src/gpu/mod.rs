//! What a worker runs on: the devices of its slice with a tensor backend per
//! device, and the models it can open.

pub mod catalog;
pub mod inventory;
pub mod models;
pub mod slice;

pub use inventory::{Gpu, Inventory, InventorySource, MigDevice};
pub use models::{ModelError, ModelStore, OpenModel, PagingStats};
pub use slice::{BackendChoice, DeviceInfo, DeviceKind, WorkerDevices};
