//! The glue [`crate::handler!`] expands to: JSON in, the user's function,
//! JSON out, with every failure turned into the job's error message.

use std::fmt::Display;

use serde::Serialize;
use serde::de::DeserializeOwned;

/// The `init` used when a handler registers none.
pub fn no_init() -> Result<(), String> {
    Ok(())
}

/// Run the handler's `init` and render its error for the host.
pub fn run_init<E: Display>(init: impl FnOnce() -> Result<(), E>) -> Result<(), String> {
    init().map_err(|e| e.to_string())
}

/// Deserialize `input`, run `handle`, serialize its output.
pub fn run_handle<I, O, E>(
    input: &str,
    handle: impl FnOnce(I) -> Result<O, E>,
) -> Result<String, String>
where
    I: DeserializeOwned,
    O: Serialize,
    E: Display,
{
    let input: I = serde_json::from_str(input).map_err(|e| format!("invalid input: {e}"))?;
    let output = handle(input).map_err(|e| e.to_string())?;
    serde_json::to_string(&output)
        .map_err(|e| format!("the handler's output could not be serialized to JSON: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    #[derive(serde::Deserialize)]
    struct Named {
        name: String,
    }

    fn greet(input: Named) -> Result<String, String> {
        Ok(format!("hi {}", input.name))
    }

    #[test]
    fn runs_the_handler_on_json() {
        assert_eq!(
            run_handle(r#"{"name":"ada"}"#, greet),
            Ok(r#""hi ada""#.into())
        );
    }

    #[test]
    fn bad_input_is_a_job_error_naming_the_problem() {
        let err = run_handle(r#"{"nom":"ada"}"#, greet).unwrap_err();
        assert!(
            err.starts_with("invalid input: missing field `name`"),
            "{err}"
        );
        let err = run_handle("not json", greet).unwrap_err();
        assert!(err.starts_with("invalid input: "), "{err}");
    }

    #[test]
    fn the_handlers_error_becomes_the_message() {
        let fail = |_: serde_json::Value| -> Result<(), &str> { Err("boom") };
        assert_eq!(run_handle("{}", fail), Err("boom".into()));
        assert_eq!(
            run_init(|| Err::<(), _>("no model")),
            Err("no model".into())
        );
    }

    #[test]
    fn unserializable_output_is_reported() {
        let bad = |_: serde_json::Value| -> Result<HashMap<(u8, u8), u8>, String> {
            Ok(HashMap::from([((1, 2), 3)]))
        };
        let err = run_handle("{}", bad).unwrap_err();
        assert!(
            err.starts_with("the handler's output could not be serialized"),
            "{err}"
        );
    }
}
