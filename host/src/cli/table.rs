//! Human output of the remote commands: aligned tables (comfy-table) and
//! short relative times; `--json` bypasses all of it.

use comfy_table::{Table, presets};

/// Print `rows` under `headers` as an aligned table, or `empty` when there
/// are no rows.
pub fn print(headers: &[&str], rows: Vec<Vec<String>>, empty: &str) {
    if rows.is_empty() {
        println!("{empty}");
        return;
    }
    let mut table = Table::new();
    table.load_style(presets::NOTHING);
    table.set_header(headers.iter().map(|h| h.to_ascii_uppercase()));
    for row in rows {
        table.add_row(row);
    }
    // comfy-table pads every column with one space on each side; the
    // first column's left pad is noise in a terminal.
    for line in table.to_string().lines() {
        println!("{}", line.strip_prefix(' ').unwrap_or(line).trim_end());
    }
}

/// Pretty JSON on stdout (for `--json`).
pub fn print_json(value: &serde_json::Value) {
    println!(
        "{}",
        serde_json::to_string_pretty(value).unwrap_or_else(|_| value.to_string())
    );
}

/// "12s ago", "3m ago", "2h ago", "4d ago" for a time in ms since the epoch.
pub fn ago(ms: i64) -> String {
    let secs = ((wasmpod::store::now_ms() - ms) / 1000).max(0);
    match secs {
        s if s < 60 => format!("{s}s ago"),
        s if s < 3600 => format!("{}m ago", s / 60),
        s if s < 86_400 => format!("{}h ago", s / 3600),
        s => format!("{}d ago", s / 86_400),
    }
}

/// Milliseconds as "850ms", "1.20s", "2m05s".
pub fn millis(ms: Option<i64>) -> String {
    match ms {
        None => "-".into(),
        Some(ms) if ms < 1000 => format!("{ms}ms"),
        Some(ms) if ms < 60_000 => format!("{:.2}s", ms as f64 / 1e3),
        Some(ms) => format!("{}m{:02}s", ms / 60_000, (ms % 60_000) / 1000),
    }
}

/// A time of day (UTC) for a log line: "14:03:07.120".
pub fn clock(ms: i64) -> String {
    let day_ms = ms.rem_euclid(86_400_000);
    format!(
        "{:02}:{:02}:{:02}.{:03}",
        day_ms / 3_600_000,
        (day_ms / 60_000) % 60,
        (day_ms / 1000) % 60,
        day_ms % 1000
    )
}
