//! The conformance cases, one module per op family.

pub mod decoder;
pub mod elementwise;
pub mod image;
pub mod io;
pub mod layout;
pub mod math;
pub mod matmul;
pub mod memory;
pub mod norms;
pub mod reduce;
