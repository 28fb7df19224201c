//! The log table on Postgres ([`LogStore`]): a batch of lines is one
//! array-bound insert.

use sqlx::postgres::PgRow;
use sqlx::{Postgres, QueryBuilder, Row};

use super::PgStore;
use crate::store::aggregates::LogStore;
use crate::store::logs::{Level, LogFilter, LogLine, LogSource, NewLogLine};
use crate::store::{Result, StoreError};

fn line_from_row(r: &PgRow) -> Result<LogLine> {
    let source: String = r.try_get("source")?;
    let level: String = r.try_get("level")?;
    Ok(LogLine {
        seq: r.try_get("seq")?,
        at: r.try_get("at")?,
        endpoint: r.try_get("endpoint_id")?,
        worker: r.try_get("worker_id")?,
        job: r.try_get("job_id")?,
        source: LogSource::parse(&source)
            .ok_or_else(|| StoreError::Corrupt(format!("log source {source:?}")))?,
        level: Level::parse(&level)
            .ok_or_else(|| StoreError::Corrupt(format!("log level {level:?}")))?,
        message: r.try_get("message")?,
    })
}

impl LogStore for PgStore {
    async fn append_logs(&self, lines: Vec<NewLogLine>) -> Result<Vec<LogLine>> {
        if lines.is_empty() {
            return Ok(Vec::new());
        }
        // WITH ORDINALITY keeps the lines' order in their seq.
        let rows = sqlx::query(
            "INSERT INTO logs (endpoint_id, worker_id, job_id, at, source, level, message) \
             SELECT e, w, j, a, s, l, m FROM UNNEST($1::text[], $2::text[], $3::text[], \
               $4::bigint[], $5::text[], $6::text[], $7::text[]) WITH ORDINALITY \
               AS v(e, w, j, a, s, l, m, n) ORDER BY n \
             RETURNING seq",
        )
        .bind(
            lines
                .iter()
                .map(|l| l.endpoint_id.as_str())
                .collect::<Vec<_>>(),
        )
        .bind(
            lines
                .iter()
                .map(|l| l.worker_id.as_deref())
                .collect::<Vec<_>>(),
        )
        .bind(
            lines
                .iter()
                .map(|l| l.job_id.as_deref())
                .collect::<Vec<_>>(),
        )
        .bind(lines.iter().map(|l| l.at).collect::<Vec<_>>())
        .bind(lines.iter().map(|l| l.source.as_str()).collect::<Vec<_>>())
        .bind(lines.iter().map(|l| l.level.as_str()).collect::<Vec<_>>())
        .bind(lines.iter().map(|l| l.message.as_str()).collect::<Vec<_>>())
        .fetch_all(&self.pool)
        .await?;
        let mut seqs: Vec<i64> = rows
            .iter()
            .map(|r| r.try_get("seq"))
            .collect::<std::result::Result<_, _>>()?;
        // Identity values follow the insert order; RETURNING's order is
        // not promised, so match them up sorted.
        seqs.sort_unstable();
        Ok(lines
            .into_iter()
            .zip(seqs)
            .map(|(l, seq)| LogLine {
                seq,
                at: l.at,
                endpoint: l.endpoint_id,
                worker: l.worker_id,
                job: l.job_id,
                source: l.source,
                level: l.level,
                message: l.message,
            })
            .collect())
    }

    async fn query_logs(&self, filter: &LogFilter) -> Result<Vec<LogLine>> {
        let mut q: QueryBuilder<Postgres> = QueryBuilder::new(
            "SELECT seq, at, endpoint_id, worker_id, job_id, source, level, message FROM logs \
             WHERE endpoint_id = ",
        );
        q.push_bind(&filter.endpoint_id);
        if let Some(j) = &filter.job_id {
            q.push(" AND job_id = ").push_bind(j);
        }
        if let Some(w) = &filter.worker_id {
            q.push(" AND worker_id = ").push_bind(w);
        }
        if let Some(min) = filter.min_level {
            q.push(" AND level IN (");
            let mut levels = q.separated(", ");
            for l in Level::ALL.into_iter().filter(|l| *l >= min) {
                levels.push_bind(l.as_str());
            }
            q.push(")");
        }
        if let Some(s) = filter.since {
            q.push(" AND at >= ").push_bind(s);
        }
        if let Some(u) = filter.until {
            q.push(" AND at < ").push_bind(u);
        }
        if let Some(a) = filter.after {
            q.push(" AND seq > ").push_bind(a);
        }
        q.push(" ORDER BY seq DESC LIMIT ")
            .push_bind(filter.limit.max(0));
        let rows = q.build().fetch_all(&self.pool).await?;
        let mut lines = rows.iter().map(line_from_row).collect::<Result<Vec<_>>>()?;
        lines.reverse();
        Ok(lines)
    }

    async fn trim_logs(&self, before: i64, keep: i64) -> Result<u64> {
        let old = sqlx::query("DELETE FROM logs WHERE at < $1")
            .bind(before)
            .execute(&self.pool)
            .await?
            .rows_affected();
        let over = sqlx::query(
            "DELETE FROM logs WHERE seq <= (SELECT seq FROM logs ORDER BY seq DESC LIMIT 1 OFFSET $1)",
        )
        .bind(keep.max(0))
        .execute(&self.pool)
        .await?
        .rows_affected();
        Ok(old + over)
    }
}
