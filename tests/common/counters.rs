//! Reading counters back from a `metrics_util` debugging recorder.

use metrics_util::debugging::{DebugValue, Snapshotter};

/// Every counter's value by name and `reason` label, with its description. (A snapshot
/// resets the recorder's counters: a second one counts what happened since the first.)
pub type Counters = Vec<(String, Option<String>, u64, Option<String>)>;

pub fn counters(snapshotter: &Snapshotter) -> Counters {
    snapshotter
        .snapshot()
        .into_vec()
        .into_iter()
        .map(|(key, _, description, value)| {
            let key = key.key();
            let reason =
                key.labels().find(|label| label.key() == "reason").map(|label| label.value().to_owned());
            let DebugValue::Counter(count) = value else { panic!("{} is not a counter", key.name()) };
            (key.name().to_owned(), reason, count, description.map(|text| text.to_string()))
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
