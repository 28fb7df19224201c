//! Scheduling: which slice a new worker goes to ([`placement`]).
//! [`autoscaler`]: how many workers an endpoint wants now.

pub mod autoscaler;
pub mod placement;

pub use autoscaler::{ScalePlan, ScalePolicy, Scaler, WorkerState, WorkerView, plan};
pub use placement::{PlacementError, Slice, place, place_preferring, slice_for_cpu};
