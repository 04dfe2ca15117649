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

/// The gauge `name` with the label `state`, if it was set.
pub fn gauge(snapshotter: &Snapshotter, name: &str, state: &str) -> Option<f64> {
    snapshotter.snapshot().into_vec().into_iter().find_map(|(key, _, _, value)| {
        let key = key.key();
        let labelled = key.labels().any(|label| label.key() == "state" && label.value() == state);
        match value {
            DebugValue::Gauge(value) if key.name() == name && labelled => Some(value.into_inner()),
            _ => None,
        }
    })
}
