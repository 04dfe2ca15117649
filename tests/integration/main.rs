//! The crate's black-box tests, a module a topic, in one binary: they talk HTTP over loopback
//! to the sandbox and to the shops they build, and start real `redis-server` and `postgres`
//! processes. A test that sets process-wide state (the environment, a global recorder or
//! subscriber) runs again in a process of its own (see `common::ran_in_own_process`).

mod common;

mod architecture;
mod campaign;
mod cluster;
mod concurrency;
mod console;
mod errors;
mod faults;
mod flow;
mod from_env;
mod handoff;
mod hostile;
mod instances;
mod kept_tokens;
mod leases;
mod logs;
mod metrics;
mod outcomes;
mod owed;
mod redis_outage;
mod rejections;
mod sandbox_record;
mod session_store;
mod shop_process;
mod silent_holder;
mod sql_store;
mod store_failures;
mod token_store;
mod transaction;
mod void;
mod without_axum;
