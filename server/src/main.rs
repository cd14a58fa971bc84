use std::process::ExitCode;

#[tokio::main]
async fn main() -> ExitCode {
    match malipo::cli::run().await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("malipo: {e:#}");
            ExitCode::FAILURE
        }
    }
}
