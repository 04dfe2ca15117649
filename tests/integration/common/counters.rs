//! Reading counters and gauges back from a `metrics_util` debugging recorder.

use metrics_util::debugging::{DebugValue, Snapshotter};

/// Every counter's value by name and `reason` label, with its description. (A snapshot
/// resets the recorder's counters: a second one counts what happened since the first.)
pub type Counters = Vec<(String, Option<String>, u64, Option<String>)>;

pub fn counters(snapshotter: &Snapshotter) -> Counters {
    snapshotter
        .snapshot()
        .into_vec()
        .into_iter()
        .filter_map(|(key, _, description, value)| {
            let key = key.key();
            let reason =
                key.labels().find(|label| label.key() == "reason").map(|label| label.value().to_owned());
            let DebugValue::Counter(count) = value else { return None };
            Some((key.name().to_owned(), reason, count, description.map(|text| text.to_string())))
        })
        .collect()
}

pub fn count(counters: &Counters, name: &str, reason: Option<&str>) -> u64 {
    counters
        .iter()
        .filter(|(n, r, ..)| n == name && r.as_deref() == reason)
        .map(|(_, _, count, _)| count)
        .sum()
}

/// A debugging recorder's readings over several snapshots. A snapshot resets the recorder's
/// counters and gauges: the counters read are kept here, summed, and the gauges are those of
/// the last snapshot (a gauge not set since the one before reads 0).
pub struct Readings<'a> {
    snapshotter: &'a Snapshotter,
    pub counters: Counters,
    gauges: Vec<(String, String, f64)>,
}

impl<'a> Readings<'a> {
    pub fn new(snapshotter: &'a Snapshotter) -> Self {
        Self { snapshotter, counters: Vec::new(), gauges: Vec::new() }
    }

    /// Takes a snapshot.
    pub fn read(&mut self) -> &mut Self {
        self.gauges.clear();
        for (key, _, description, value) in self.snapshotter.snapshot().into_vec() {
            let key = key.key();
            let label =
                |name| key.labels().find(|label| label.key() == name).map(|label| label.value().to_owned());
            match value {
                DebugValue::Counter(count) => self.counters.push((
                    key.name().to_owned(),
                    label("reason"),
                    count,
                    description.map(|text| text.to_string()),
                )),
                DebugValue::Gauge(value) => {
                    let state = label("state").unwrap_or_default();
                    self.gauges.push((key.name().to_owned(), state, value.into_inner()));
                }
                DebugValue::Histogram(_) => {}
            }
        }
        self
    }

    /// The last snapshot's gauges `name`, by their `state` label, in its order.
    pub fn gauges(&self, name: &str) -> Vec<(&str, f64)> {
        let mut gauges: Vec<(&str, f64)> = self
            .gauges
            .iter()
            .filter(|(n, ..)| n == name)
            .map(|(_, state, value)| (state.as_str(), *value))
            .collect();
        gauges.sort_by(|a, b| a.0.cmp(b.0));
        gauges
    }
}
