//! [`Masked`]: a string shown in logs with all but its first characters hidden.

use std::fmt;

// `Masked` is `pub` in this private module, so still crate-only, because `pub(crate)` items
// cannot be re-exported by `lib.rs`'s `__fuzz` module (built under `--cfg fuzzing`).

/// How many leading characters of a token may appear in logs, `Debug` and `Display`.
pub const VISIBLE_PREFIX: usize = 8;

/// Any string shown masked: at most its first 8 characters (escaped), then `…` if anything was
/// hidden. Used for tokens, valid or not, wherever they are logged.
#[derive(Clone, Copy)]
pub struct Masked<'a>(pub &'a str);

impl fmt::Display for Masked<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut chars = self.0.chars();
        for c in chars.by_ref().take(VISIBLE_PREFIX) {
            write!(f, "{}", c.escape_debug())?;
        }
        if chars.next().is_some() {
            f.write_str("…")?;
        }
        Ok(())
    }
}

impl fmt::Debug for Masked<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "\"{self}\"")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masked_shows_at_most_eight_escaped_characters() {
        assert_eq!(Masked("1095752fb409-457a").to_string(), "1095752f…");
        assert_eq!(Masked("short").to_string(), "short");
        assert_eq!(Masked("a\nb").to_string(), "a\\nb");
        assert_eq!(format!("{:?}", Masked("1095752fb409")), "\"1095752f…\"");
    }
}
