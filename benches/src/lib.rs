//! Benchmarks live in `benches/` (criterion, `cargo bench -p benches`) and in shell scripts
//! beside this crate that compare the project's tools with peers such as `rdkafka_performance`.
