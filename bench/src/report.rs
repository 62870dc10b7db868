//! The suite's summary: one row per measurement, printed as one table at
//! the end, each with the baseline measured in the same run, the ratio and
//! the target.

use std::fmt::Write as _;

/// One measurement of one scenario.
pub struct Row {
    /// `A`, `B`, ... as the issue names them, or `scaling`.
    pub scenario: &'static str,
    /// What was run: sizes, keys, modules.
    pub case: String,
    /// The measured value with its unit, e.g. `1,203,000 events/s`.
    pub measured: String,
    /// The baseline, named and measured in the same run, with its value.
    pub baseline: String,
    /// measured / baseline where a ratio means something (higher = better).
    pub ratio: Option<f64>,
    /// The target, as the issue states it; empty when there is none.
    pub target: String,
    /// Whether the target is met; `None` when there is no target.
    pub met: Option<bool>,
}

#[derive(Default)]
pub struct Report {
    rows: Vec<Row>,
    failures: Vec<String>,
}

impl Report {
    pub fn add(&mut self, row: Row) {
        println!(
            "[{}] {}: {} (baseline {}){}",
            row.scenario,
            row.case,
            row.measured,
            row.baseline,
            row.ratio
                .map(|r| format!(", ratio {r:.2}"))
                .unwrap_or_default()
        );
        self.rows.push(row);
    }

    /// A scenario that could not run: named in the table, and the run fails.
    pub fn failed(&mut self, scenario: &'static str, error: &anyhow::Error) {
        eprintln!("[{scenario}] failed: {error:#}");
        self.failures.push(format!("{scenario}: {error:#}"));
    }

    pub fn failures(&self) -> &[String] {
        &self.failures
    }

    pub fn table(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "| scenario | case | measured | baseline (same run) | ratio | target | met |"
        );
        let _ = writeln!(out, "|---|---|---:|---:|---:|---|:-:|");
        for row in &self.rows {
            let _ = writeln!(
                out,
                "| {} | {} | {} | {} | {} | {} | {} |",
                row.scenario,
                row.case,
                row.measured,
                row.baseline,
                row.ratio.map(|r| format!("{r:.2}")).unwrap_or_default(),
                row.target,
                match row.met {
                    Some(true) => "yes",
                    Some(false) => "NO",
                    None => "",
                }
            );
        }
        for failure in &self.failures {
            let _ = writeln!(out, "| failed | {failure} | | | | | NO |");
        }
        out
    }
}

/// `1234567.8` -> `1,234,568`: rates are read at a glance.
pub fn thousands(value: f64) -> String {
    let digits = format!("{:.0}", value.max(0.0));
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// The load average, printed with results: a busy machine explains a slow
/// number.
pub fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.trim().to_owned())
        .unwrap_or_else(|e| format!("unavailable ({e})"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thousands_groups_digits() {
        assert_eq!(thousands(0.0), "0");
        assert_eq!(thousands(999.4), "999");
        assert_eq!(thousands(1000.0), "1,000");
        assert_eq!(thousands(1_234_567.8), "1,234,568");
    }

    #[test]
    fn the_table_marks_missed_targets_and_failures() {
        let mut report = Report::default();
        report.add(Row {
            scenario: "A",
            case: "1M events".into(),
            measured: "10 events/s".into(),
            baseline: "native 20 events/s".into(),
            ratio: Some(0.5),
            target: ">= 0.5".into(),
            met: Some(false),
        });
        report.failed("B", &anyhow::anyhow!("no broker"));
        let table = report.table();
        assert!(
            table.contains(
                "| A | 1M events | 10 events/s | native 20 events/s | 0.50 | >= 0.5 | NO |"
            ),
            "{table}"
        );
        assert!(table.contains("| failed | B: no broker |"), "{table}");
    }
}
