//! `wasmpod gpus`: print the device inventory.

use std::path::PathBuf;
use std::process::ExitCode;

use wasmpod::gpu::Inventory;

#[derive(clap::Args, Debug)]
pub struct GpusArgs {
    /// A simulated inventory (TOML: `[[gpu]] name, memory_gib, count,
    /// mig = [...]`) instead of NVML's; the same flag as `wasmpod serve`.
    #[arg(long, env = "WASMPOD_INVENTORY")]
    pub inventory: Option<PathBuf>,
    /// Print JSON instead of a table.
    #[arg(long)]
    pub json: bool,
}

pub fn gpus(args: GpusArgs) -> anyhow::Result<ExitCode> {
    let inventory = Inventory::discover(args.inventory.as_deref())?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&inventory)?);
    } else {
        print!("{}", inventory.render());
    }
    Ok(ExitCode::SUCCESS)
}
