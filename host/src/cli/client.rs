//! A small typed client over a wasmpod server's HTTP API, for the CLI's
//! remote commands (`deploy`, `endpoints`, `jobs`, `logs`, `keys`,
//! `invoke`). It knows where the server is and which key to send, turns
//! transport failures and 401/403 answers into errors that say what to do,
//! and hands back both the typed answer and the raw JSON (for `--json`).

use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde::de::DeserializeOwned;
use serde_json::Value;

/// The default server: what `wasmpod serve` and `make dev` listen on.
pub const DEFAULT_URL: &str = "http://127.0.0.1:8000";

/// How a remote command reaches the server (flattened into each one).
#[derive(clap::Args, Debug, Clone)]
pub struct RemoteArgs {
    /// The wasmpod server's base URL.
    #[arg(long, env = "WASMPOD_URL", default_value = DEFAULT_URL, global = true)]
    pub url: String,
    /// An admin API key (default: WASMPOD_API_KEY, else WASMPOD_ADMIN_KEY,
    /// the key the server itself was started with).
    #[arg(long, env = "WASMPOD_API_KEY", hide_env_values = true, global = true)]
    pub api_key: Option<String>,
    /// Print the server's JSON answer instead of a table (for scripts).
    #[arg(long, global = true)]
    pub json: bool,
}

/// Why a request to the server did not give the answer asked for.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error(
        "no API key: pass --api-key or set WASMPOD_API_KEY to an admin key (`make dev` keeps its key in .wasmpod/dev-admin-key; `wasmpod serve` prints one on first start)"
    )]
    NoKey,
    #[error("--url {url:?} is not a URL ({reason}); give e.g. {DEFAULT_URL}")]
    BadUrl { url: String, reason: String },
    #[error(
        "cannot reach the wasmpod server at {url} ({reason}); start it with `wasmpod serve` (or `make dev`), or point --url / WASMPOD_URL at it"
    )]
    Unreachable { url: String, reason: String },
    #[error(
        "the server at {url} refused the API key: {message} (pass an admin key with --api-key or WASMPOD_API_KEY)"
    )]
    BadKey { url: String, message: String },
    #[error("{method} {path}: {message} (HTTP {status})")]
    Api {
        method: Method,
        path: String,
        status: StatusCode,
        message: String,
    },
    #[error("{method} {path}: unexpected answer ({reason})")]
    Decode {
        method: Method,
        path: String,
        reason: String,
    },
}

impl ClientError {
    /// The HTTP status of an error answer.
    pub fn status(&self) -> Option<StatusCode> {
        match self {
            ClientError::Api { status, .. } => Some(*status),
            _ => None,
        }
    }
}

/// A typed answer and the JSON it came from.
pub struct Answer<T> {
    pub value: T,
    pub raw: Value,
}

/// A connection to one server with one key. Cheap to clone.
#[derive(Clone)]
pub struct Client {
    base: reqwest::Url,
    key: String,
    http: reqwest::Client,
}

impl Client {
    /// A client for `args`' server and key (checked, not yet contacted).
    pub fn new(args: &RemoteArgs) -> Result<Self, ClientError> {
        // reqwest is built without a default TLS provider; pick ring.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let key = args
            .api_key
            .clone()
            .or_else(|| std::env::var("WASMPOD_ADMIN_KEY").ok())
            .map(|k| k.trim().to_string())
            .filter(|k| !k.is_empty())
            .ok_or(ClientError::NoKey)?;
        let trimmed = args.url.trim().trim_end_matches('/');
        let base = reqwest::Url::parse(trimmed).map_err(|e| ClientError::BadUrl {
            url: args.url.clone(),
            reason: e.to_string(),
        })?;
        if !matches!(base.scheme(), "http" | "https") {
            return Err(ClientError::BadUrl {
                url: args.url.clone(),
                reason: "the scheme must be http or https".into(),
            });
        }
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(10))
            .build()
            .map_err(|e| ClientError::BadUrl {
                url: args.url.clone(),
                reason: e.to_string(),
            })?;
        Ok(Self { base, key, http })
    }

    /// The server's base URL, as given (no trailing slash).
    pub fn base(&self) -> String {
        self.base.as_str().trim_end_matches('/').to_string()
    }

    /// A request to `path` (which starts with '/') with the key.
    pub fn request(&self, method: Method, path: &str) -> reqwest::RequestBuilder {
        self.http
            .request(method, format!("{}{path}", self.base()))
            .bearer_auth(&self.key)
    }

    /// Send `req` and read a JSON answer; a non-2xx answer becomes an error
    /// carrying the server's own message.
    pub async fn send<T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        req: reqwest::RequestBuilder,
    ) -> Result<Answer<T>, ClientError> {
        let resp = self.response(method.clone(), path, req).await?;
        let bytes = resp.bytes().await.map_err(|e| self.transport(e))?;
        let raw: Value = serde_json::from_slice(&bytes).map_err(|e| ClientError::Decode {
            method: method.clone(),
            path: path.to_string(),
            reason: format!("not JSON: {e}"),
        })?;
        let value = serde_json::from_value(raw.clone()).map_err(|e| ClientError::Decode {
            method,
            path: path.to_string(),
            reason: e.to_string(),
        })?;
        Ok(Answer { value, raw })
    }

    /// Send `req`; a 2xx response is returned as is (for streamed bodies),
    /// anything else becomes an error.
    pub async fn response(
        &self,
        method: Method,
        path: &str,
        req: reqwest::RequestBuilder,
    ) -> Result<reqwest::Response, ClientError> {
        let resp = req.send().await.map_err(|e| self.transport(e))?;
        let status = resp.status();
        if status.is_success() {
            return Ok(resp);
        }
        let text = resp.text().await.unwrap_or_default();
        let message = serde_json::from_str::<Value>(&text)
            .ok()
            .and_then(|v| v["error"].as_str().map(str::to_string))
            .unwrap_or_else(|| {
                let t = text.trim();
                if t.is_empty() {
                    status
                        .canonical_reason()
                        .unwrap_or("no message")
                        .to_string()
                } else {
                    t.chars().take(300).collect()
                }
            });
        if status == StatusCode::UNAUTHORIZED || status == StatusCode::FORBIDDEN {
            return Err(ClientError::BadKey {
                url: self.base(),
                message,
            });
        }
        Err(ClientError::Api {
            method,
            path: path.to_string(),
            status,
            message,
        })
    }

    fn transport(&self, e: reqwest::Error) -> ClientError {
        let reason = if e.is_connect() {
            // The innermost cause says it plainly: "Connection refused".
            let mut cause: &dyn std::error::Error = &e;
            while let Some(next) = cause.source() {
                cause = next;
            }
            cause.to_string()
        } else if e.is_timeout() {
            "timed out".to_string()
        } else {
            e.to_string()
        };
        // The reason is the innermost cause; the chain above it is
        // reqwest's wrapping of the same failure.
        ClientError::Unreachable {
            url: self.base(),
            reason,
        }
    }

    pub async fn get<T: DeserializeOwned>(&self, path: &str) -> Result<Answer<T>, ClientError> {
        self.send(Method::GET, path, self.request(Method::GET, path))
            .await
    }

    pub async fn post<T: DeserializeOwned>(
        &self,
        path: &str,
        body: &Value,
    ) -> Result<Answer<T>, ClientError> {
        self.send(
            Method::POST,
            path,
            self.request(Method::POST, path).json(body),
        )
        .await
    }

    pub async fn patch<T: DeserializeOwned>(
        &self,
        path: &str,
        body: &Value,
    ) -> Result<Answer<T>, ClientError> {
        self.send(
            Method::PATCH,
            path,
            self.request(Method::PATCH, path).json(body),
        )
        .await
    }

    pub async fn delete<T: DeserializeOwned>(&self, path: &str) -> Result<Answer<T>, ClientError> {
        self.send(Method::DELETE, path, self.request(Method::DELETE, path))
            .await
    }
}

/// `s` as one path segment (ids from the command line may hold anything).
pub fn segment(s: &str) -> String {
    percent_encoding::utf8_percent_encode(s, percent_encoding::NON_ALPHANUMERIC).to_string()
}
