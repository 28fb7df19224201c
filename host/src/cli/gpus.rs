//! `wasmpod gpus`: print the device inventory.

use std::path::PathBuf;
use std::process::ExitCode;

use wasmpod::gpu::Inventory;

#[derive(clap::Args, Debug)]
pub struct GpusArgs {
    /// A simulated inventory (TOML) instead of NVML's.
    #[arg(long, env = "WASMPOD_SIMULATED_GPUS")]
    pub simulated: Option<PathBuf>,
    /// Print JSON instead of a table.
    #[arg(long)]
    pub json: bool,
}

pub fn gpus(args: GpusArgs) -> anyhow::Result<ExitCode> {
    let inventory = Inventory::discover(args.simulated.as_deref())?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&inventory)?);
    } else {
        print!("{}", inventory.render());
    }
    Ok(ExitCode::SUCCESS)
}
