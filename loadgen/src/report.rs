//! Output: a human-readable table on stdout, then one `RESULT {json}` line
//! for scripts.

use crate::latency::Percentiles;

pub fn heading(title: &str) {
    println!();
    println!("== {title}");
}

/// Two-column table.
pub fn kv<K: AsRef<str>>(rows: &[(K, String)]) {
    let w = rows
        .iter()
        .map(|(k, _)| k.as_ref().len())
        .max()
        .unwrap_or(0);
    for (k, v) in rows {
        println!("  {:<w$}  {v}", k.as_ref());
    }
}

/// Column table; numbers right-aligned.
pub fn grid(headers: &[&str], rows: &[Vec<String>]) {
    let mut widths: Vec<usize> = headers.iter().map(|h| h.len()).collect();
    for row in rows {
        for (i, cell) in row.iter().enumerate() {
            if i < widths.len() {
                widths[i] = widths[i].max(cell.len());
            }
        }
    }
    let line = |cells: Vec<&str>| {
        let parts: Vec<String> = cells
            .iter()
            .enumerate()
            .map(|(i, c)| format!("{c:>w$}", w = widths[i]))
            .collect();
        println!("  {}", parts.join("  "));
    };
    line(headers.to_vec());
    for row in rows {
        line(row.iter().map(String::as_str).collect());
    }
}

pub fn latency_row(label: &str, p: &Percentiles) -> (String, String) {
    (
        label.to_owned(),
        if p.count == 0 {
            "no samples".to_owned()
        } else {
            format!(
                "p50 {:.2} ms  p90 {:.2}  p99 {:.2}  p99.9 {:.2}  max {:.2}  mean {:.2}  (n={})",
                p.p50_ms, p.p90_ms, p.p99_ms, p.p999_ms, p.max_ms, p.mean_ms, p.count
            )
        },
    )
}

pub fn result(v: &serde_json::Value) {
    println!();
    println!("RESULT {v}");
}

pub fn f2(x: f64) -> String {
    format!("{x:.2}")
}

pub fn opt(x: Option<f64>, digits: usize) -> String {
    match x {
        Some(v) => format!("{v:.digits$}"),
        None => "-".to_owned(),
    }
}
