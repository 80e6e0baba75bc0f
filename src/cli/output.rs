//! Human tables and JSON output for the CLI.

use serde::Serialize;

/// `println!` for command output: a closed stdout (`vigil settings list | head -1`)
/// ends the program quietly instead of panicking like `println!` does.
macro_rules! outln {
    () => {
        $crate::cli::output::emit(format_args!(""))
    };
    ($($arg:tt)*) => {
        $crate::cli::output::emit(format_args!($($arg)*))
    };
}

/// Write one line to stdout. Exit 0 silently if the reader went away (broken pipe),
/// exit 1 with one line on any other write error.
pub fn emit(line: std::fmt::Arguments<'_>) {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    if let Err(e) = writeln!(out, "{line}").and_then(|()| out.flush()) {
        if e.kind() == std::io::ErrorKind::BrokenPipe {
            std::process::exit(0);
        }
        eprintln!("error: cannot write to stdout: {e}");
        std::process::exit(1);
    }
}

/// Output format chosen with `-o`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Output {
    /// Aligned columns for humans.
    Table,
    /// One JSON document for scripts.
    Json,
    /// One YAML document for people who like YAML.
    Yaml,
}

/// Print `value` as JSON or YAML (for `-o json` / `-o yaml`; a table is the caller's).
pub fn structured<T: Serialize>(out: Output, value: &T) -> anyhow::Result<()> {
    match out {
        Output::Yaml => {
            let text = serde_yaml_ng::to_string(value)?;
            outln!("{}", text.trim_end());
            Ok(())
        }
        _ => json(value),
    }
}

/// Print `value` as pretty JSON.
pub fn json<T: Serialize>(value: &T) -> anyhow::Result<()> {
    outln!("{}", serde_json::to_string_pretty(value)?);
    Ok(())
}

/// Render rows under a header, columns padded to their widest cell.
pub fn table(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (i, cell) in row.iter().enumerate() {
            if i < widths.len() {
                widths[i] = widths[i].max(cell.chars().count());
            }
        }
    }
    let line = |cells: Vec<&str>| {
        let mut s = String::new();
        for (i, c) in cells.iter().enumerate() {
            if i + 1 == cells.len() {
                s.push_str(c);
            } else {
                s.push_str(&format!("{c:<w$}  ", w = widths[i]));
            }
        }
        s.trim_end().to_string()
    };
    let mut out = line(header.to_vec());
    for row in rows {
        out.push('\n');
        out.push_str(&line(row.iter().map(String::as_str).collect()));
    }
    out
}

/// `-` for absent values.
pub fn opt<T: ToString>(v: Option<T>) -> String {
    v.map(|v| v.to_string()).unwrap_or_else(|| "-".into())
}

/// Milliseconds since the Unix epoch on this machine.
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// A short duration: `45s`, `3m`, `2h`, `4d`.
pub fn short(ms: u64) -> String {
    let s = ms / 1000;
    match s {
        0..=59 => format!("{s}s"),
        60..=3599 => format!("{}m", s / 60),
        3600..=86_399 => format!("{}h", s / 3600),
        _ => format!("{}d", s / 86_400),
    }
}

/// `at` relative to `now`, in the past: `3m ago` (`0s ago` for clock skew).
pub fn ago(at: u64, now: u64) -> String {
    format!("{} ago", short(now.saturating_sub(at)))
}

/// `at` relative to `now`, in the future: `in 40s` (`now` once due).
pub fn until(at: u64, now: u64) -> String {
    if at <= now {
        "now".into()
    } else {
        format!("in {}", short(at - now))
    }
}

/// `k=v, k=v` or `-`.
pub fn pairs<V: std::fmt::Display>(m: &std::collections::BTreeMap<String, V>) -> String {
    if m.is_empty() {
        return "-".into();
    }
    m.iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Keys and names are identifiers; anything else is refused by the server anyway,
/// but never let a `/`, `?` or `&` change the path or the query.
pub fn enc(key: &str) -> String {
    key.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') {
                c.to_string()
            } else {
                let mut buf = [0u8; 4];
                c.encode_utf8(&mut buf)
                    .bytes()
                    .map(|b| format!("%{b:02X}"))
                    .collect()
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    #[test]
    fn relative_times() {
        assert_eq!(super::ago(1_000, 181_000), "3m ago");
        assert_eq!(super::ago(5_000, 1_000), "0s ago");
        assert_eq!(super::until(41_000, 1_000), "in 40s");
        assert_eq!(super::until(1_000, 1_000), "now");
        assert_eq!(super::enc("a/b?c"), "a%2Fb%3Fc");
    }

    #[test]
    fn columns_align() {
        let t = super::table(
            &["ID", "ADDR"],
            &[vec!["1".into(), "a".into()], vec!["10".into(), "bb".into()]],
        );
        assert_eq!(t, "ID  ADDR\n1   a\n10  bb");
    }
}
