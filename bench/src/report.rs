//! The suite's summary: one row per measurement, printed as one table at
//! the end, each with the baseline measured in the same run, the ratio and
//! the target.

use std::cmp::Ordering;
use std::fmt::Write as _;

/// One measurement of one scenario.
pub struct Row {
    /// `A`, `B`, ... as the issue names them, or `scaling`.
    pub scenario: &'static str,
    /// What was run: sizes, keys, modules.
    pub case: String,
    /// The measured value, in the unit its target (if any) is stated in.
    pub measured: Quantity,
    /// More about the measurement, printed after it (CPU, RSS at the end).
    pub detail: String,
    /// The baseline, named and measured in the same run, with its value.
    pub baseline: String,
    /// measured / baseline where a ratio means something (higher = better).
    pub ratio: Option<f64>,
    /// The target, as the issue states it; `None` when there is none.
    pub target: Option<Target>,
}

impl Row {
    /// Whether the target is met, from the ratio and the measured value
    /// alone: the one place `met` is decided.
    pub fn met(&self) -> Option<bool> {
        let target = self.target.as_ref()?;
        Some(target.conditions.iter().all(|condition| match condition {
            Condition::RatioAtLeast(least) => self.ratio.is_some_and(|r| r >= *least),
            Condition::Below(limit) => self.measured.compare(limit) == Some(Ordering::Less),
            Condition::AtLeast(least) => matches!(
                self.measured.compare(least),
                Some(Ordering::Greater | Ordering::Equal)
            ),
            Condition::Requires { holds, .. } => *holds,
        }))
    }
}

/// A number with its unit. Targets and measurements are compared only in
/// the same unit (a MiB figure against an MB target is refused).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Quantity {
    pub value: f64,
    pub unit: Unit,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unit {
    EventsPerSec,
    Millis,
    /// Megabytes, 10^6 bytes (`/proc`'s "kB" are KiB: see [`Quantity::from_kib`]).
    MegaBytes,
    NanosPerEvent,
}

impl Quantity {
    pub fn events_per_sec(value: f64) -> Self {
        Self {
            value,
            unit: Unit::EventsPerSec,
        }
    }

    pub fn millis(value: f64) -> Self {
        Self {
            value,
            unit: Unit::Millis,
        }
    }

    pub fn megabytes(value: f64) -> Self {
        Self {
            value,
            unit: Unit::MegaBytes,
        }
    }

    pub fn bytes(bytes: u64) -> Self {
        Self::megabytes(bytes as f64 / 1e6)
    }

    /// A `/proc/<pid>/status` figure such as `VmHWM`, whose "kB" are KiB.
    pub fn from_kib(kib: u64) -> Self {
        Self::bytes(kib * 1024)
    }

    pub fn nanos_per_event(value: f64) -> Self {
        Self {
            value,
            unit: Unit::NanosPerEvent,
        }
    }

    /// `None` when the units differ: such a comparison means nothing.
    fn compare(&self, other: &Quantity) -> Option<Ordering> {
        if self.unit != other.unit {
            eprintln!("cannot compare {self} with {other}: different units");
            return None;
        }
        self.value.partial_cmp(&other.value)
    }
}

impl std::fmt::Display for Quantity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let v = self.value;
        match self.unit {
            Unit::EventsPerSec => write!(f, "{} events/s", thousands(v)),
            Unit::Millis if v < 10.0 => write!(f, "{v:.3} ms"),
            Unit::Millis => write!(f, "{v:.0} ms"),
            Unit::MegaBytes => write!(f, "{v:.0} MB"),
            Unit::NanosPerEvent => write!(f, "{} ns per event", thousands(v)),
        }
    }
}

/// A target: every condition must hold.
pub struct Target {
    conditions: Vec<Condition>,
}

pub enum Condition {
    /// measured / baseline at least this.
    RatioAtLeast(f64),
    /// The measured value below this.
    Below(Quantity),
    /// The measured value at least this.
    AtLeast(Quantity),
    /// A condition of the measurement's validity (e.g. "no errors"), named.
    Requires { what: String, holds: bool },
}

impl Target {
    pub fn new(conditions: Vec<Condition>) -> Self {
        Self { conditions }
    }

    pub fn ratio_at_least(least: f64) -> Self {
        Self::new(vec![Condition::RatioAtLeast(least)])
    }

    pub fn below(limit: Quantity) -> Self {
        Self::new(vec![Condition::Below(limit)])
    }
}

impl std::fmt::Display for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for (i, condition) in self.conditions.iter().enumerate() {
            if i > 0 {
                f.write_str(" and ")?;
            }
            match condition {
                Condition::RatioAtLeast(least) => write!(f, ">= {least} of the baseline")?,
                Condition::Below(limit) => write!(f, "< {limit}")?,
                Condition::AtLeast(least) => write!(f, ">= {least}")?,
                Condition::Requires { what, .. } => f.write_str(what)?,
            }
        }
        Ok(())
    }
}

#[derive(Default)]
pub struct Report {
    rows: Vec<Row>,
    failures: Vec<String>,
}

impl Report {
    pub fn add(&mut self, row: Row) {
        println!(
            "[{}] {}: {}{} (baseline {}){}",
            row.scenario,
            row.case,
            row.measured,
            row.detail,
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
                "| {} | {} | {}{} | {} | {} | {} | {} |",
                row.scenario,
                row.case,
                row.measured,
                row.detail,
                row.baseline,
                row.ratio.map(|r| format!("{r:.2}")).unwrap_or_default(),
                row.target
                    .as_ref()
                    .map(ToString::to_string)
                    .unwrap_or_default(),
                match row.met() {
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

    fn row(measured: Quantity, ratio: Option<f64>, target: Option<Target>) -> Row {
        Row {
            scenario: "A",
            case: "1M events".into(),
            measured,
            detail: String::new(),
            baseline: "native 20 events/s".into(),
            ratio,
            target,
        }
    }

    #[test]
    fn the_table_marks_missed_targets_and_failures() {
        let mut report = Report::default();
        report.add(row(
            Quantity::events_per_sec(10.0),
            Some(0.5),
            Some(Target::new(vec![
                Condition::RatioAtLeast(0.5),
                Condition::AtLeast(Quantity::events_per_sec(1e6)),
            ])),
        ));
        report.failed("B", &anyhow::anyhow!("no broker"));
        let table = report.table();
        assert!(
            table.contains(
                "| A | 1M events | 10 events/s | native 20 events/s | 0.50 | >= 0.5 of the baseline and >= 1,000,000 events/s | NO |"
            ),
            "{table}"
        );
        assert!(table.contains("| failed | B: no broker |"), "{table}");
    }

    #[test]
    fn met_is_derived_from_ratio_value_and_target() {
        let ratio_only = |r| {
            row(
                Quantity::events_per_sec(1.0),
                r,
                Some(Target::ratio_at_least(0.5)),
            )
        };
        assert_eq!(ratio_only(Some(0.5)).met(), Some(true));
        assert_eq!(ratio_only(Some(0.49)).met(), Some(false));
        assert_eq!(ratio_only(None).met(), Some(false));
        assert_eq!(row(Quantity::millis(1.0), None, None).met(), None);
        let memory = |mb| {
            row(
                Quantity::megabytes(mb),
                None,
                Some(Target::below(Quantity::megabytes(300.0))),
            )
        };
        assert_eq!(memory(299.0).met(), Some(true));
        assert_eq!(memory(300.0).met(), Some(false));
        let invalid = row(
            Quantity::millis(0.5),
            None,
            Some(Target::new(vec![
                Condition::Below(Quantity::millis(1.0)),
                Condition::Requires {
                    what: "no errors".into(),
                    holds: false,
                },
            ])),
        );
        assert_eq!(invalid.met(), Some(false));
    }

    #[test]
    fn at_least_holds_at_the_value_itself() {
        let rate = |value| {
            row(
                Quantity::events_per_sec(value),
                Some(0.8),
                Some(Target::new(vec![
                    Condition::RatioAtLeast(0.5),
                    Condition::AtLeast(Quantity::events_per_sec(1e6)),
                ])),
            )
        };
        assert_eq!(rate(1e6).met(), Some(true));
        assert_eq!(rate(999_999.0).met(), Some(false));
    }

    #[test]
    fn bytes_and_kib_convert_to_megabytes() {
        assert_eq!(Quantity::bytes(300_000_000), Quantity::megabytes(300.0));
        // /proc's "kB" are KiB: 1000 of them are 1,024,000 bytes.
        assert_eq!(Quantity::from_kib(1000), Quantity::megabytes(1.024));
        assert_eq!(Quantity::from_kib(292_969).to_string(), "300 MB");
        assert_eq!(Quantity::millis(0.25).to_string(), "0.250 ms");
        assert_eq!(Quantity::millis(250.4).to_string(), "250 ms");
        assert_eq!(
            Quantity::events_per_sec(1_234_567.0).to_string(),
            "1,234,567 events/s"
        );
    }

    #[test]
    fn memory_is_compared_in_one_unit() {
        // 290 MiB of RSS is 304 MB: over a 300 MB target.
        let rss = Quantity::from_kib(290 * 1024);
        assert_eq!(rss.to_string(), "304 MB");
        let over = row(rss, None, Some(Target::below(Quantity::megabytes(300.0))));
        assert_eq!(over.met(), Some(false));
        // Different units never compare as met.
        let mixed = row(
            Quantity::millis(1.0),
            None,
            Some(Target::below(Quantity::megabytes(300.0))),
        );
        assert_eq!(mixed.met(), Some(false));
    }
}
