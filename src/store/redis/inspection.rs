//! [`Inspection`] for [`RedisTokenStore`]: what the staff see, each sorted set read a window of
//! IDs at a time, then the records of those IDs (see the module's docs).

use std::{collections::HashMap, time::SystemTime};

use fred::{interfaces::*, types::Value};

use super::*;
use crate::store::{
    Cause, Cursor, DailyCounts, ListOrder, ListQuery, TimeAxis,
    listing::{self, DAY_MS},
};

/// The fewest IDs one window of a list reads: a page with a product filter needs more IDs
/// than its limit.
const LEAST_WINDOW: usize = 100;

/// How many days one `daily` script counts at most.
const DAYS_A_SCRIPT: usize = 100;

/// A walk along a sorted set, a window of members at a time, in one order, within scores, each
/// member once: strictly past the last one it answered (or a cursor).
#[derive(Debug)]
struct Walk {
    /// The sorted set walked.
    set: String,
    /// The set a member must also be in to be answered, if any.
    within: Option<String>,
    /// Whether the highest scores come first.
    newest_first: bool,
    /// The lowest score, included.
    from: Option<i64>,
    /// The highest score, excluded.
    until: Option<i64>,
    /// The score the next window starts from (included), on the walk's moving side.
    bound: Option<i64>,
    /// How many members at the start of the next window were read already.
    skip: usize,
    /// The last member passed, `(score, ID)`: the walk answers only those strictly past it.
    past: Option<(i64, String)>,
    /// How many members one window reads.
    window: usize,
    /// Whether the last window read was the last of the set's range.
    done: bool,
}

impl Walk {
    /// A walk along the whole of `set`, the lowest scores first, `window` at a time.
    fn all(set: String, window: usize) -> Self {
        Self {
            set,
            within: None,
            newest_first: false,
            from: None,
            until: None,
            bound: None,
            skip: 0,
            past: None,
            window: window.max(1),
            done: false,
        }
    }

    /// The walk `query` asks for on `set`, members of `within` only, `window` at a time.
    fn of(query: &ListQuery, set: String, within: Option<String>, window: usize) -> Self {
        let cursor = query.after.as_ref().map(Cursor::key);
        Self {
            within,
            newest_first: query.order == ListOrder::NewestFirst,
            from: query.from.map(to_millis),
            until: query.until.map(to_millis),
            bound: cursor.map(|(at, _)| at),
            past: cursor.map(|(at, id)| (at, id.to_string())),
            ..Self::all(set, window)
        }
    }

    /// The score the next window starts from, included, if it starts from one.
    fn start(&self) -> Option<i64> {
        if self.newest_first {
            self.bound.filter(|bound| self.until.is_none_or(|until| *bound < until))
        } else {
            match (self.from, self.bound) {
                (Some(from), Some(bound)) => Some(from.max(bound)),
                (from, bound) => from.or(bound),
            }
        }
    }

    /// The script's arguments for the next window: direction, lowest and highest score,
    /// offset, count.
    fn args(&self) -> Vec<String> {
        let start = self.start().map(|start| start.to_string());
        let until = self.until.map_or_else(|| "+inf".to_owned(), |until| format!("({until}"));
        let from = self.from.map_or_else(|| "-inf".to_owned(), |from| from.to_string());
        let (direction, lowest, highest) = if self.newest_first {
            ("rev", from, start.unwrap_or(until))
        } else {
            ("fwd", start.unwrap_or(from), until)
        };
        vec![direction.to_owned(), lowest, highest, self.skip.to_string(), self.window.to_string()]
    }

    /// Takes in a window the script answered: the IDs past the last one answered, and in the
    /// second set; moves the walk past the window.
    fn read(&mut self, reply: Value) -> Vec<String> {
        let mut items = reply.into_array().into_iter();
        let mut members = Vec::new();
        while let (Some(id), Some(at), Some(kept)) = (items.next(), items.next(), items.next()) {
            if let (Some(id), Some(at)) = (id.into_string(), at.as_i64()) {
                members.push((at, id, kept.as_i64() == Some(1)));
            }
        }
        self.done = members.len() < self.window;
        if let Some(last) = members.last().map(|(at, ..)| *at) {
            let at_last = members.iter().filter(|(at, ..)| *at == last).count();
            if self.start() == Some(last) {
                self.skip += members.len();
            } else {
                (self.bound, self.skip) = (Some(last), at_last);
            }
        }
        let mut answered = Vec::new();
        for (at, id, kept) in members {
            let key = (at, id);
            let beyond = self.past.as_ref().is_none_or(|past| {
                if self.newest_first {
                    (key.0, &key.1) < (past.0, &past.1)
                } else {
                    (key.0, &key.1) > (past.0, &past.1)
                }
            });
            if !beyond {
                continue;
            }
            if kept {
                answered.push(key.1.clone());
            }
            self.past = Some(key);
        }
        answered
    }
}

impl<C> RedisTokenStore<C>
where
    C: KeysInterface + LuaInterface + Send + Sync + 'static,
{
    /// The IDs of `walk`'s next window, or `None` once it is done.
    async fn next_window(&self, walk: &mut Walk) -> Result<Option<Vec<String>>, StoreError> {
        if walk.done {
            return Ok(None);
        }
        let keys = std::iter::once(walk.set.clone()).chain(walk.within.clone()).collect();
        let reply = self.timed(self.script(&WINDOW_SCRIPT, keys, walk.args())).await?;
        Ok(Some(walk.read(reply)))
    }

    /// Those of the conversions `ids` that `query` admits, in the order given; unreadable ones
    /// are logged and left out.
    async fn admitted(&self, query: &ListQuery, ids: Vec<String>) -> Result<Vec<Conversion>, StoreError> {
        let mut admitted = Vec::new();
        for (id, fields) in self.read_records(ids).await? {
            match decode_record(&id, fields) {
                Ok(conversion) if query.admits(&conversion) => admitted.push(conversion),
                // Moved on (another state, or settled anew) since its ID was read.
                Ok(_) => {}
                Err((id, corrupt)) => {
                    unreadable_conversion(id, &corrupt);
                }
            }
        }
        Ok(admitted)
    }
}

#[async_trait]
impl<C> Inspection for RedisTokenStore<C>
where
    C: KeysInterface + LuaInterface + Send + Sync + 'static,
{
    async fn list(&self, query: &ListQuery) -> Result<Vec<Conversion>, StoreError> {
        let limit = query.limit;
        let (set, within) = match query.axis {
            TimeAxis::Ordered => (self.keys.state(query.state), None),
            TimeAxis::Settled if query.state.is_settled() => {
                (self.keys.settled(), Some(self.keys.state(query.state)))
            }
            // Conversions not settled have no place on the settled axis.
            TimeAxis::Settled => return Ok(Vec::new()),
        };
        let mut walk = Walk::of(query, set, within, limit.clamp(LEAST_WINDOW, BATCH));
        let mut listed = Vec::new();
        while listed.len() < limit {
            let Some(ids) = self.next_window(&mut walk).await? else { break };
            let mut ids = ids.into_iter();
            while listed.len() < limit {
                // Without a product filter, the records of as many IDs as the page lacks; with
                // one, of the whole window.
                let wanted = if query.product.is_some() { BATCH } else { limit - listed.len() };
                let chunk: Vec<String> = ids.by_ref().take(wanted).collect();
                if chunk.is_empty() {
                    break;
                }
                let admitted = self.admitted(query, chunk).await?;
                listed.extend(admitted.into_iter().take(limit - listed.len()));
            }
        }
        Ok(listed)
    }

    async fn counts(&self) -> Result<ConversionCounts, StoreError> {
        let keys = ConversionState::ALL.map(|state| self.keys.state(state)).into();
        let reply = self.timed(self.script(&COUNTS_SCRIPT, keys, Vec::new())).await?;
        let mut counts = ConversionCounts::default();
        for (state, count) in ConversionState::ALL.into_iter().zip(reply.into_array()) {
            *counts.of_mut(state) = count.as_u64().unwrap_or_default();
        }
        Ok(counts)
    }

    async fn daily(&self, from: SystemTime, until: SystemTime) -> Result<Vec<DailyCounts>, StoreError> {
        let end = to_millis(until);
        let days: Vec<i64> =
            std::iter::successors(Some(listing::day_of(to_millis(from))), |day| day.checked_add(DAY_MS))
                .take_while(|day| *day < end)
                .collect();
        let keys: Vec<String> = ConversionState::ALL.map(|state| self.keys.state(state)).into();
        let mut by_day: HashMap<i64, ConversionCounts> = HashMap::new();
        for chunk in days.chunks(DAYS_A_SCRIPT) {
            let args = chunk.iter().flat_map(|day| [day.to_string(), day.saturating_add(DAY_MS).to_string()]);
            let reply = self.timed(self.script(&DAYS_SCRIPT, keys.clone(), args.collect())).await?;
            let mut counted = reply.into_array().into_iter();
            for state in ConversionState::ALL {
                for day in chunk {
                    let count = counted.next().and_then(|count| count.as_u64()).unwrap_or_default();
                    *by_day.entry(*day).or_default().of_mut(state) = count;
                }
            }
        }
        Ok(listing::every_day(from, until, |day| by_day.get(&day).copied().unwrap_or_default()))
    }

    async fn causes(&self, state: ConversionState, limit: usize) -> Result<Vec<Cause>, StoreError> {
        let mut walk = Walk::all(self.keys.state(state), BATCH);
        let mut counted: HashMap<String, u64> = HashMap::new();
        while let Some(ids) = self.next_window(&mut walk).await? {
            if ids.is_empty() {
                continue;
            }
            let keys = ids.iter().map(|id| self.keys.conversion(id)).collect();
            let args = vec![state.as_str().to_owned()];
            let errors = self.timed(self.script(&ERRORS_SCRIPT, keys, args)).await?;
            for error in errors.into_array().into_iter().filter_map(Value::into_string) {
                *counted.entry(error).or_default() += 1;
            }
        }
        Ok(listing::most_frequent(counted, limit))
    }

    async fn get(&self, id: ConversionId) -> Result<Option<Conversion>, StoreError> {
        // No hash under the ID's key is no such conversion (claims and lists log one that is
        // indexed, yet missing).
        let records = self.read_records(vec![id.to_string()]).await?;
        match records.into_iter().next() {
            Some((text, fields)) if fields.is_array() || fields.is_map() => {
                let found = decode_record(&text, fields);
                Ok(found.map_err(|(id, corrupt)| unreadable_conversion(id, &corrupt)).ok())
            }
            _ => Ok(None),
        }
    }

    async fn find_token(&self, token: &SovReqToken) -> Result<Option<Conversion>, StoreError> {
        self.indexed(self.keys.tokens(), token.as_str(), "token", |conversion| conversion.token == *token)
            .await
    }

    async fn retry_parked(&self, now: SystemTime) -> Result<u64, StoreError> {
        let mut walk = Walk::all(self.keys.state(ConversionState::Parked), BATCH);
        let mut woken = 0;
        while let Some(ids) = self.next_window(&mut walk).await? {
            if ids.is_empty() {
                continue;
            }
            let keys = std::iter::once(self.keys.due()).chain(ids.iter().map(|id| self.keys.conversion(id)));
            let args = std::iter::once(to_millis(now).to_string()).chain(ids.iter().cloned());
            let count = self.timed(self.script(&WAKE_SCRIPT, keys.collect(), args.collect())).await?;
            woken += count.as_u64().unwrap_or_default();
        }
        Ok(woken)
    }

    async fn retry_parked_one(&self, id: ConversionId, now: SystemTime) -> Result<bool, StoreError> {
        let id = id.to_string();
        let keys = vec![self.keys.due(), self.keys.conversion(&id)];
        let args = vec![to_millis(now).to_string(), id];
        let woken = self.timed(self.script(&WAKE_SCRIPT, keys, args)).await?;
        Ok(woken.as_u64() == Some(1))
    }

    async fn retry_dead(&self, id: ConversionId, now: SystemTime) -> Result<bool, StoreError> {
        let id = id.to_string();
        let args = vec![id.clone(), to_millis(now).to_string()];
        let revived = self.timed(self.script(&REVIVE_SCRIPT, self.settle_keys(&id), args)).await?;
        Ok(revived.as_u64() == Some(1))
    }
}
