//! What a caught panic said, for the stages that turn a worker's or a library's panic into an
//! error naming the input it was on.

use std::any::Any;

/// The message of a panic payload from `catch_unwind` (a `&str` or a `String`, as `panic!`
/// makes them), or "(no message)".
pub fn panic_message(payload: &(dyn Any + Send)) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "(no message)".to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_both_payloads_panic_makes() {
        let literal = std::panic::catch_unwind(|| panic!("plain")).unwrap_err();
        let formatted = std::panic::catch_unwind(|| panic!("{}", 42)).unwrap_err();
        let other = std::panic::catch_unwind(|| std::panic::panic_any(7u8)).unwrap_err();
        assert_eq!(panic_message(&*literal), "plain");
        assert_eq!(panic_message(&*formatted), "42");
        assert_eq!(panic_message(&*other), "(no message)");
    }
}
