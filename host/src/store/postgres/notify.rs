//! The cluster's wake-ups: the schema's triggers `NOTIFY` when a job
//! enters the queue or becomes final (`migrations-postgres/`), and every
//! host `LISTEN`s, so an idle worker anywhere claims a job accepted
//! elsewhere and a `/runsync` waiting on one host answers as soon as the
//! job finished on another, with no polling interval in between.

use std::time::Duration;

use sqlx::postgres::PgListener;
use tokio::sync::mpsc;

use super::{FINAL_CHANNEL, PgStore, QUEUED_CHANNEL};
use crate::store::types::{JobStatus, Wakeup};

impl PgStore {
    /// Listen for the other hosts' wake-ups until `tx` is dropped. The
    /// listener reconnects by itself when the database comes back; what was
    /// sent while it was away is made up by [`Wakeup::Reconnected`].
    pub fn listen(&self, tx: mpsc::UnboundedSender<Wakeup>) {
        let pool = self.pool.clone();
        tokio::spawn(async move {
            loop {
                let mut listener = match PgListener::connect_with(&pool).await {
                    Ok(l) => l,
                    Err(e) => {
                        tracing::debug!("listening for the cluster's wake-ups: {e}; retrying");
                        tokio::time::sleep(Duration::from_millis(500)).await;
                        continue;
                    }
                };
                if let Err(e) = listener.listen_all([QUEUED_CHANNEL, FINAL_CHANNEL]).await {
                    tracing::debug!("listening for the cluster's wake-ups: {e}; retrying");
                    tokio::time::sleep(Duration::from_millis(500)).await;
                    continue;
                }
                if tx.send(Wakeup::Reconnected).is_err() {
                    return;
                }
                loop {
                    // `try_recv` answers None when the connection was lost
                    // (then a new listener is made above).
                    let n = match listener.try_recv().await {
                        Ok(Some(n)) => n,
                        Ok(None) => break,
                        Err(e) => {
                            tracing::debug!("the cluster's wake-ups: {e}; reconnecting");
                            break;
                        }
                    };
                    let wake = match n.channel() {
                        QUEUED_CHANNEL => Some(Wakeup::Queued {
                            endpoint_id: n.payload().to_string(),
                        }),
                        FINAL_CHANNEL => {
                            let mut parts = n.payload().splitn(3, ' ');
                            match (parts.next(), parts.next(), parts.next()) {
                                (Some(e), Some(id), Some(s)) => {
                                    JobStatus::parse(s).map(|status| Wakeup::Final {
                                        endpoint_id: e.to_string(),
                                        job_id: id.to_string(),
                                        status,
                                    })
                                }
                                _ => None,
                            }
                        }
                        _ => None,
                    };
                    if let Some(wake) = wake
                        && tx.send(wake).is_err()
                    {
                        return;
                    }
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        });
    }
}
