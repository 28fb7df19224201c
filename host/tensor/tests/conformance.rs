//! The backend conformance suite: every op of the tensor contract checked
//! against naive f64 reference code, plus every error path and the memory
//! accounting rules.
//!
//! Each case is a function over `&Device`, so every backend runs the same
//! suite: [`device_makers`] lists the CPU and, when `cuda::available()`,
//! CUDA device 0 (otherwise it prints "skipped: no CUDA device"), and each
//! `#[test]` below runs on every one, judged against the same references.

mod cases;
mod support;

use std::sync::Arc;

use wasmpod_tensor::{Device, MemoryAccount};

/// Builds a device of one backend charged to the given account.
pub type DeviceMaker = fn(Arc<MemoryAccount>) -> Device;

/// Every backend under test, by name.
pub fn device_makers() -> Vec<(String, DeviceMaker)> {
    let mut makers = vec![("cpu".to_string(), Device::cpu as DeviceMaker)];
    if wasmpod_tensor::cuda::available() {
        makers.push(("cuda".to_string(), cuda_device as DeviceMaker));
    } else {
        println!("skipped: no CUDA device");
    }
    makers
}

/// A device on CUDA GPU 0 (only called when `cuda::available()`).
/// `WASMPOD_CONFORMANCE_CUDNN=off` runs its convolutions on the im2col +
/// cuBLAS path, as on a machine without cuDNN, so one GPU checks both.
fn cuda_device(account: Arc<MemoryAccount>) -> Device {
    let backend = wasmpod_tensor::cuda::CudaBackend::new(0, account)
        .expect("cuda::available() said a device is usable");
    if std::env::var("WASMPOD_CONFORMANCE_CUDNN").is_ok_and(|v| v == "off") {
        backend.set_cudnn(false);
    } else if let Some(why) = backend.cudnn_unavailable() {
        println!("cuda convolutions without cuDNN: {why}");
    }
    Device::new(Arc::new(backend))
}

/// One device per backend, each with its own unlimited account.
pub fn devices() -> Vec<(String, Device)> {
    device_makers()
        .into_iter()
        .map(|(name, make)| {
            let device = make(MemoryAccount::unlimited(format!("conformance-{name}")));
            (name, device)
        })
        .collect()
}

/// Runs `case` on every device, naming the backend when it fails.
fn on_every_device(case: fn(&Device)) {
    for (name, device) in devices() {
        let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| case(&device)));
        if let Err(panic) = outcome {
            eprintln!("failed on backend {name}");
            std::panic::resume_unwind(panic);
        }
    }
}

/// Runs `case` with every backend's device maker (cases that need their
/// own accounts, such as quota tests).
fn on_every_maker(case: fn(DeviceMaker)) {
    for (name, make) in device_makers() {
        let outcome = std::panic::catch_unwind(|| case(make));
        if let Err(panic) = outcome {
            eprintln!("failed on backend {name}");
            std::panic::resume_unwind(panic);
        }
    }
}

/// One `#[test]` per case function.
macro_rules! conformance {
    ($runner:ident: $($module:ident::$case:ident),* $(,)?) => {
        $(
            #[test]
            fn $case() {
                $runner(cases::$module::$case);
            }
        )*
    };
}

conformance! { on_every_device:
    io::round_trip_every_dtype,
    io::scalars_and_empty_tensors,
    io::read_back_conversions,
    io::zeros_every_dtype,
    io::upload_errors,
    io::copy_between_devices,
    io::foreign_tensors_are_rejected,
    matmul::matmul_2d_sizes,
    matmul::matmul_vectors,
    matmul::matmul_batched_and_broadcast,
    matmul::matmul_half_precision,
    matmul::matmul_large_parallel,
    matmul::matmul_errors,
    elementwise::binary_float_broadcasting,
    elementwise::binary_integers,
    elementwise::binary_large_fast_paths,
    elementwise::integer_division,
    elementwise::binary_errors,
    elementwise::activations,
    elementwise::activation_edge_values,
    elementwise::scale_every_float_dtype,
    elementwise::float_only_ops_reject_integers,
    norms::softmax_every_axis,
    norms::softmax_is_stable,
    norms::softmax_errors,
    norms::layer_norm_variants,
    norms::rms_norm_variants,
    norms::norm_errors,
    layout::gather_every_index_dtype,
    layout::gather_errors,
    layout::reshape_infers_and_shares,
    layout::reshape_errors,
    layout::permute_every_order,
    layout::permute_errors,
    layout::transpose_negative_axes,
    layout::slice_every_axis,
    layout::slice_errors,
    layout::concat_every_axis,
    layout::concat_errors,
    layout::cast_every_pair,
    layout::cast_truncates_and_saturates,
    reduce::reductions_every_axis,
    reduce::reductions_integers,
    reduce::reductions_large_rows,
    reduce::reductions_empty_axes,
    reduce::reduce_errors,
    reduce::argmax_every_axis,
    reduce::argmax_errors,
    reduce::top_k_rows,
    reduce::top_k_errors,
    image::conv2d_every_geometry_and_layout,
    image::conv2d_fused_epilogues,
    image::conv1d_both_layouts,
    image::conv_transpose2d_geometries,
    image::conv_errors,
    image::pooling_every_kind,
    image::pooling_errors,
    image::pad_every_mode_and_dtype,
    image::group_norm_both_layouts,
    image::resize_nearest_and_bilinear,
    math::math_functions,
    math::clamp_every_dtype,
    math::pow_minimum_maximum_broadcast,
    math::comparisons_and_where,
    math::cumsum_every_axis,
    math::ranges,
    math::random_matches_philox,
    decoder::linear_matches_reference,
    decoder::linear_many_matches_linear,
    decoder::linear_errors,
    decoder::silu_mul_matches_reference,
    decoder::rope_matches_reference,
    decoder::attention_matches_reference,
    decoder::attention_masks_everything_to_zeros,
    decoder::attention_errors,
    decoder::attention_cached_matches_its_parts,
    decoder::attention_cached_errors,
    decoder::write_in_place,
    decoder::sample_rules,
    decoder::graph_replays_into_the_same_tensors,
    decoder::graph_sampling_follows_the_counter,
    decoder::capture_records_one_device_and_no_uploads,
}

conformance! { on_every_maker:
    memory::quota_exceeded_leaves_account_unchanged,
    memory::dropping_tensors_returns_bytes,
    memory::every_op_charges_its_result,
    memory::shared_weights_charge_the_reader,
    memory::failed_ops_leave_account_unchanged,
}
