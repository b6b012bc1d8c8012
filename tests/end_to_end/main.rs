//! The end-to-end tests, one binary: every AWS SDK crate is linked once instead of once per
//! file, and `cargo test` runs these files' tests side by side rather than file after file
//! (most of their time is waiting on the bed's scaled AWS clocks).

mod authorities_publish;
mod authorities_reload;
mod cli_preflight;
mod doctor;
mod env_file_check;
mod fault_matrix;
mod seed_authorities;
mod services_healthy;
mod stack_lifecycle;
