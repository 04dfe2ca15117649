//! Running the measuring programs some benches call (wrk, valgrind) and reading their figures.

use std::{process::Command, str::FromStr};

/// Runs `command` and returns what it printed, its standard output then its standard error;
/// or `None`, after a notice, when it cannot run or fails. `unmeasured` says what then goes
/// unmeasured.
pub fn output(command: &mut Command, unmeasured: &str) -> Option<String> {
    let program = command.get_program().to_string_lossy().into_owned();
    match command.output() {
        Ok(output) if output.status.success() => Some(format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        )),
        Ok(output) => {
            eprintln!("{program} failed: {}", String::from_utf8_lossy(&output.stderr));
            None
        }
        Err(error) => {
            eprintln!("{program} not run ({error}): {unmeasured}");
            None
        }
    }
}

/// The number after the first `marker` in `text`, or `None` after a notice.
pub fn number_after<T: FromStr>(text: &str, marker: &str) -> Option<T> {
    let after = text.lines().find_map(|line| line.split(marker).nth(1));
    let number = after.and_then(|number| number.trim().parse().ok());
    if number.is_none() {
        eprintln!("no number after {marker:?} in the output:\n{text}");
    }
    number
}
