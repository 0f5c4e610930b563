//! `cargo run -p tinyforge-vocab --example count -- DOCS TOKENIZER`: times `count_documents`
//! alone (what `tinyforge vocab count` reports as `count_s`), for benchmarks before the command
//! is wired.

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let base = tinyforge_vocab::BaseTokenizer::load(std::path::Path::new(&args[2]))?;
    let start = std::time::Instant::now();
    let counts = tinyforge_vocab::count_documents(
        std::path::Path::new(&args[1]),
        &base,
        &tinyforge_vocab::CountConfig::default(),
        &tinyforge_task::Silent,
    )?;
    let seconds = start.elapsed().as_secs_f64();
    println!(
        "{{\"documents\": {}, \"bytes\": {}, \"total_tokens\": {}, \"count_s\": {seconds:.3}}}",
        counts.documents,
        counts.bytes,
        counts.total()
    );
    Ok(())
}
