//! `fail`: always returns the error "boom", which becomes the job's
//! `error`. Shows how a handler's `Err` reaches the client (as opposed to a
//! panic, which traps the instance).

use wasmpod_sdk::serde_json::Value;

fn handle(_input: Value) -> Result<Value, &'static str> {
    Err("boom")
}

wasmpod_sdk::handler!(handle);
