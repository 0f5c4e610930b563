//! Token shard format: zstd-framed token files, manifest, checksums and a random-access reader
