//! `megzo`: the one binary of MEGZO Integrator Vortex. See `megzo --help`.

#[tokio::main]
async fn main() -> std::process::ExitCode {
    workers::cli::main().await
}
