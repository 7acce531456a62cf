//! The outcome of one scenario: a table on stderr for people, one JSON line on stdout
//! for scripts (`grep '^{'`).

use std::io::Write as _;

use serde_json::{Map, Value, json};

use crate::cli::Common;

/// Figures and parameters of one scenario run, in the order they were added.
#[derive(Debug)]
pub(crate) struct Report {
    scenario: &'static str,
    common: Vec<(String, Value)>,
    params: Vec<(String, Value)>,
    figures: Vec<(String, Value)>,
    complete: bool,
    notes: Vec<String>,
}

impl Report {
    /// An empty report for `scenario` run with `common`.
    pub(crate) fn new(scenario: &'static str, common: &Common) -> Self {
        Report {
            scenario,
            common: vec![
                ("system".into(), json!(common.system)),
                ("transport".into(), json!(common.transport)),
                (
                    "addr".into(),
                    json!(
                        common
                            .addrs
                            .iter()
                            .map(ToString::to_string)
                            .collect::<Vec<_>>()
                    ),
                ),
            ],
            params: Vec::new(),
            figures: Vec::new(),
            complete: true,
            notes: Vec::new(),
        }
    }

    /// Adds a parameter.
    pub(crate) fn param(&mut self, name: &str, value: impl Into<Value>) {
        self.params.push((name.into(), value.into()));
    }

    /// Adds a figure.
    pub(crate) fn figure(&mut self, name: &str, value: impl Into<Value>) {
        self.figures.push((name.into(), value.into()));
    }

    /// Adds figures computed elsewhere (percentiles).
    pub(crate) fn figures(&mut self, figures: Vec<(String, Value)>) {
        self.figures.extend(figures);
    }

    /// Adds a figure only when known.
    pub(crate) fn figure_opt<T: Into<Value>>(&mut self, name: &str, value: Option<T>) {
        self.figure(name, value.map_or(Value::Null, Into::into));
    }

    /// Marks the run incomplete (the process exits non-zero), with why.
    pub(crate) fn incomplete(&mut self, why: impl Into<String>) {
        self.complete = false;
        self.notes.push(why.into());
    }

    /// Adds a remark shown in the table and the JSON line.
    pub(crate) fn note(&mut self, note: impl Into<String>) {
        self.notes.push(note.into());
    }

    /// Whether every expected thing happened before the deadline.
    pub(crate) fn is_complete(&self) -> bool {
        self.complete
    }

    /// The JSON line.
    pub(crate) fn json(&self) -> Value {
        let mut line = Map::new();
        line.insert("scenario".into(), json!(self.scenario));
        for (k, v) in &self.common {
            line.insert(k.clone(), v.clone());
        }
        let params: Map<String, Value> = self.params.iter().cloned().collect();
        line.insert("params".into(), Value::Object(params));
        line.insert("complete".into(), json!(self.complete));
        for (k, v) in &self.figures {
            line.insert(k.clone(), v.clone());
        }
        if !self.notes.is_empty() {
            line.insert("notes".into(), json!(self.notes));
        }
        Value::Object(line)
    }

    /// Prints the table on stderr and the JSON line on stdout.
    pub(crate) fn print(&self) {
        let mut err = std::io::stderr().lock();
        let title = format!(
            "{} — {} {}",
            self.scenario,
            self.common[0].1.as_str().unwrap_or("?"),
            self.common[1].1.as_str().unwrap_or("?"),
        );
        let _ = writeln!(err, "\n{title}");
        let _ = writeln!(err, "{}", "-".repeat(title.chars().count().max(40)));
        let width = self
            .params
            .iter()
            .chain(&self.figures)
            .map(|(k, _)| k.len())
            .max()
            .unwrap_or(10);
        for (k, v) in &self.params {
            let _ = writeln!(err, "  {k:<width$}  {}", show(v));
        }
        let _ = writeln!(err, "  {}", "·".repeat(width + 10));
        for (k, v) in &self.figures {
            let _ = writeln!(err, "  {k:<width$}  {}", show(v));
        }
        let _ = writeln!(
            err,
            "  {:<width$}  {}",
            "complete",
            if self.complete { "yes" } else { "NO" }
        );
        for note in &self.notes {
            let _ = writeln!(err, "  note: {note}");
        }
        drop(err);
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "{}", self.json());
        let _ = out.flush();
    }
}

fn show(v: &Value) -> String {
    match v {
        Value::Null => "—".into(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}
