//! What the benches share: where their results go for `benches/report.py`.

use std::path::PathBuf;

/// criterion's output folder: `target/criterion`, next to the bench binary's
/// `target/release/deps`.
pub fn criterion_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("the bench binary's path");
    exe.ancestors().nth(3).expect("target/release/deps/NAME").join("criterion")
}

/// Writes `json` to `criterion/FOLDER/FILE`, next to criterion's own results.
pub fn write_result(folder: &str, file: &str, json: &serde_json::Value) {
    let dir = criterion_dir().join(folder);
    std::fs::create_dir_all(&dir).expect("criterion's folder is writable");
    std::fs::write(dir.join(file), json.to_string()).expect("criterion's folder is writable");
}
