//! Documents (Parquet) to token shards, encoding in parallel
