//! `wasmpod keys list|create|revoke`: the server's API keys (the key itself
//! is shown once, when it is created).

use std::process::ExitCode;

use serde_json::{Value, json};

use super::client::{Client, RemoteArgs, segment};
use super::table;
use super::wire;

#[derive(clap::Args, Debug)]
pub struct KeysArgs {
    #[command(subcommand)]
    pub command: Option<KeysCommand>,
    #[command(flatten)]
    pub remote: RemoteArgs,
}

#[derive(clap::Subcommand, Debug)]
pub enum KeysCommand {
    /// List keys (the default).
    List,
    /// Create a key: an admin key, or with --endpoint one that may only
    /// invoke that endpoint's /v2 routes.
    Create {
        /// A label to recognise it by.
        name: String,
        /// Make an invoke key for this endpoint instead of an admin key.
        #[arg(long)]
        endpoint: Option<String>,
    },
    /// Revoke a key by its id.
    Revoke { id: String },
}

pub async fn keys(args: KeysArgs) -> anyhow::Result<ExitCode> {
    let client = Client::new(&args.remote)?;
    match args.command.unwrap_or(KeysCommand::List) {
        KeysCommand::List => {
            let answer = client.get::<wire::Keys>("/v1/keys").await?;
            if args.remote.json {
                table::print_json(&answer.raw);
                return Ok(ExitCode::SUCCESS);
            }
            let rows = answer
                .value
                .keys
                .iter()
                .map(|k| {
                    vec![
                        k.id.clone(),
                        k.name.clone(),
                        match &k.endpoint_id {
                            Some(e) => format!("{} {e}", k.scope),
                            None => k.scope.clone(),
                        },
                        format!("{}…", k.prefix),
                        table::ago(k.created_at),
                        k.revoked_at.map(table::ago).unwrap_or_default(),
                    ]
                })
                .collect();
            table::print(
                &["id", "name", "scope", "key", "created", "revoked"],
                rows,
                "no keys",
            );
        }
        KeysCommand::Create { name, endpoint } => {
            let body = match &endpoint {
                Some(e) => json!({"name": name, "scope": "invoke", "endpoint_id": e}),
                None => json!({"name": name, "scope": "admin"}),
            };
            let answer = client.post::<wire::CreatedKey>("/v1/keys", &body).await?;
            if args.remote.json {
                table::print_json(&answer.raw);
            } else {
                println!("{}", answer.value.key);
                eprintln!(
                    "created key {} ({}); it is shown only now: store it",
                    answer.value.id,
                    match &endpoint {
                        Some(e) => format!("may invoke endpoint {e}"),
                        None => "admin".into(),
                    }
                );
            }
        }
        KeysCommand::Revoke { id } => {
            let answer = client
                .delete::<Value>(&format!("/v1/keys/{}", segment(&id)))
                .await?;
            if args.remote.json {
                table::print_json(&answer.raw);
            } else {
                println!("revoked key {id}");
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
