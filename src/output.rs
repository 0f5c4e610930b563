//! The command's stdout: its JSON reports and tables, written so that a closed pipe
//! (`tinyforge … | head`) is an error `main` recognises as a normal end, not a panic as
//! `println!` would make it.

use std::io::Write;

/// `value` as pretty JSON and a newline.
pub fn json(value: &impl serde::Serialize) -> anyhow::Result<()> {
    line(&serde_json::to_string_pretty(value)?)
}

/// `text` and a newline, flushed.
pub fn line(text: &str) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    writeln!(out, "{text}")?;
    out.flush()?;
    Ok(())
}

/// Whether `err` is stdout's reader having gone away.
pub fn is_broken_pipe(err: &anyhow::Error) -> bool {
    err.chain().any(|cause| {
        cause
            .downcast_ref::<std::io::Error>()
            .is_some_and(|e| e.kind() == std::io::ErrorKind::BrokenPipe)
    })
}
