//! `fleet-worker`: the `megzo` command line ([`workers::cli`]), built in this package so the
//! fault run can spawn real `megzo worker` processes by `CARGO_BIN_EXE_fleet-worker`. It is the
//! same entry point as `workers/src/main.rs`; only the binary's name differs (two binaries named
//! `megzo` in one workspace would overwrite each other).

#[tokio::main]
async fn main() -> std::process::ExitCode {
    workers::cli::main().await
}
