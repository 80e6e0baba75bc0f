//! The two exposition formats `/metrics` speaks, and the choice between them.
//!
//! `prometheus-client` writes OpenMetrics text only. Prometheus asks for it (its scrape
//! `Accept` header lists `application/openmetrics-text` first) and gets it unchanged.
//! Everything else (curl, `promtool check metrics`, older scrapers) gets the classic
//! Prometheus text format 0.0.4, which differs from OpenMetrics here in three ways
//! only: a counter's `# HELP`/`# TYPE` name carries the `_total` suffix its samples
//! have, there is no `# UNIT` line and no `# EOF` terminator. Read by the 0.0.4 parser
//! unchanged, every counter would become an untyped series without help text (a lint
//! problem for promtool), hence [`to_prometheus_text`].

/// An exposition format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// OpenMetrics 1.0 text.
    OpenMetrics,
    /// Prometheus text format 0.0.4.
    Text,
}

impl Format {
    /// The format a scraper asked for in its `Accept` header (OpenMetrics only when it
    /// says so; the classic text format otherwise).
    pub fn negotiate(accept: Option<&str>) -> Format {
        let wants_openmetrics = accept.is_some_and(|a| {
            a.split(',').any(|part| {
                let mut params = part.split(';').map(str::trim);
                let media = params.next().unwrap_or_default();
                let refused = params.any(|p| {
                    p.strip_prefix("q=")
                        .and_then(|q| q.parse::<f64>().ok())
                        .is_some_and(|q| q <= 0.0)
                });
                media.eq_ignore_ascii_case("application/openmetrics-text") && !refused
            })
        });
        if wants_openmetrics {
            Format::OpenMetrics
        } else {
            Format::Text
        }
    }

    /// Its `Content-Type`.
    pub fn content_type(self) -> &'static str {
        match self {
            Format::OpenMetrics => "application/openmetrics-text; version=1.0.0; charset=utf-8",
            Format::Text => "text/plain; version=0.0.4; charset=utf-8",
        }
    }
}

/// Rewrite an OpenMetrics exposition (as `prometheus-client` writes it: counters,
/// gauges, histograms, unknown) into the Prometheus 0.0.4 text format.
pub fn to_prometheus_text(openmetrics: &str) -> String {
    let mut out = String::with_capacity(openmetrics.len());
    // A `# HELP` line waits for its `# TYPE`: a counter's name gains `_total`.
    let mut help: Option<(&str, &str)> = None;
    for line in openmetrics.lines() {
        if let Some(rest) = line.strip_prefix("# HELP ") {
            flush_help(&mut out, help.take(), "");
            let (name, text) = rest.split_once(' ').unwrap_or((rest, ""));
            help = Some((name, text));
        } else if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').unwrap_or((rest, "untyped"));
            let (suffix, kind) = match kind {
                "counter" => ("_total", "counter"),
                "unknown" => ("", "untyped"),
                other => ("", other),
            };
            match help.take() {
                Some((n, text)) if n == name => flush_help(&mut out, Some((n, text)), suffix),
                other => flush_help(&mut out, other, ""),
            }
            out.push_str("# TYPE ");
            out.push_str(name);
            out.push_str(suffix);
            out.push(' ');
            out.push_str(kind);
            out.push('\n');
        } else if line.starts_with("# UNIT ") || line == "# EOF" {
            continue;
        } else {
            flush_help(&mut out, help.take(), "");
            out.push_str(line);
            out.push('\n');
        }
    }
    flush_help(&mut out, help, "");
    out
}

fn flush_help(out: &mut String, help: Option<(&str, &str)>, suffix: &str) {
    if let Some((name, text)) = help {
        out.push_str("# HELP ");
        out.push_str(name);
        out.push_str(suffix);
        out.push(' ');
        out.push_str(text);
        out.push('\n');
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prometheus_asks_for_openmetrics_everyone_else_gets_text() {
        let prometheus = "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1";
        assert_eq!(Format::negotiate(Some(prometheus)), Format::OpenMetrics);
        assert_eq!(Format::negotiate(Some("*/*")), Format::Text);
        assert_eq!(Format::negotiate(None), Format::Text);
        assert_eq!(
            Format::negotiate(Some("application/openmetrics-text;q=0, text/plain")),
            Format::Text
        );
    }

    #[test]
    fn counters_gain_total_units_and_eof_go() {
        let om = "# HELP vigil_checks Checks run.\n\
                  # TYPE vigil_checks counter\n\
                  vigil_checks_total{kind=\"health\"} 3\n\
                  # HELP vigil_check_duration_seconds Latency.\n\
                  # TYPE vigil_check_duration_seconds histogram\n\
                  # UNIT vigil_check_duration_seconds seconds\n\
                  vigil_check_duration_seconds_count 1\n\
                  # HELP vigil_raft_term Term.\n\
                  # TYPE vigil_raft_term gauge\n\
                  vigil_raft_term 4\n\
                  # EOF\n";
        let text = to_prometheus_text(om);
        assert_eq!(
            text,
            "# HELP vigil_checks_total Checks run.\n\
             # TYPE vigil_checks_total counter\n\
             vigil_checks_total{kind=\"health\"} 3\n\
             # HELP vigil_check_duration_seconds Latency.\n\
             # TYPE vigil_check_duration_seconds histogram\n\
             vigil_check_duration_seconds_count 1\n\
             # HELP vigil_raft_term Term.\n\
             # TYPE vigil_raft_term gauge\n\
             vigil_raft_term 4\n"
        );
    }
}
